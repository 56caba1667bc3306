package differential_test

import (
	"context"
	"fmt"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/conformance/differential"
	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// Compare a router and a broker on a scenario of one's own: a receiver on a queue
// address. The report says what each intermediary answered.
func Example() {
	router, _ := fakerouter.Run(nil)
	defer router.Close()
	broker, _ := fakebroker.Run(nil)
	defer broker.Close()

	receiver := differential.Scenario{
		Name: "receiver",
		Doc:  "One receiver on a unicast address.",
		Run: func(ctx context.Context, env *differential.Env) error {
			conn, err := env.Dial(ctx, nil) // through the recording proxy
			if err != nil {
				return err
			}
			sess, err := conn.NewSession(ctx, nil)
			if err != nil {
				return err
			}
			r, err := sess.NewReceiver(ctx, env.Unique("unicast.example."), &amqp.ReceiverOptions{Credit: -1})
			if err != nil {
				return err
			}
			if err := env.Quiet(ctx); err != nil {
				return err
			}
			return r.Close(ctx)
		},
	}
	report, err := differential.Compare(context.Background(), receiver,
		differential.Target{Name: "fakerouter", URL: router.URL()},
		differential.Target{Name: "fakebroker", URL: broker.URL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("equal:", report.Equal())
	for _, c := range report.Conns {
		for _, l := range c.Lanes {
			for _, row := range l.Rows {
				if row.Type() == "open" && row.Dir() == differential.FromPeer {
					a, _ := row.A.Get("properties.product")
					b, _ := row.B.Get("properties.product")
					fmt.Println("product:", a, "/", b)
				}
			}
		}
	}
	// Output:
	// equal: false
	// product: qpid-dispatch-router / qpid-cpp
}
