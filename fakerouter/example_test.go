package fakerouter_test

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// A router in a program (tests use RunT): a consumer on an anycast address, a sender
// whose message is accepted end to end, and the counts the router keeps.
func ExampleRun() {
	r, err := fakerouter.Run(nil) // 127.0.0.1 on a free port, the guide's address table
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	conn, err := amqp.Dial(ctx, r.URL(), nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Println("product:", conn.Properties()["product"])
	sess, _ := conn.NewSession(ctx, nil)
	addr := "openstack.org/om/rpc/anycast/openstack/compute"
	rcv, _ := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 10})
	_ = r.WaitForConsumers(ctx, addr, 1)
	go func() {
		m, err := rcv.Receive(ctx, nil)
		if err == nil {
			_ = rcv.AcceptMessage(ctx, m)
		}
	}()
	snd, _ := sess.NewSender(ctx, addr, nil)
	// Send returns once the consumer accepted: end-to-end acknowledgement.
	if err := snd.Send(ctx, amqp.NewMessage([]byte("hello")), nil); err != nil {
		panic(err)
	}
	info, _ := r.Address(addr)
	fmt.Println("distribution:", info.Distribution)
	fmt.Println("delivered:", info.Counts.Delivered, "accepted:", info.Counts.Accepted)
	// Output:
	// product: qpid-dispatch-router
	// distribution: balanced
	// delivered: 1 accepted: 1
}

// The address table of the deployment guide, as the router applies it.
func ExampleRouter_Distribution() {
	r, err := fakerouter.New(nil)
	if err != nil {
		panic(err)
	}
	for _, addr := range []string{
		"exclusive.openstack.compute.node1",
		"broadcast.openstack.compute.all",
		"openstack.org/om/rpc/anycast/openstack/compute",
		"openstack.org/om/notify/anycast/openstack/notifications.info",
	} {
		fmt.Println(addr, "→", r.Distribution(addr))
	}
	// Output:
	// exclusive.openstack.compute.node1 → closest
	// broadcast.openstack.compute.all → multicast
	// openstack.org/om/rpc/anycast/openstack/compute → balanced
	// openstack.org/om/notify/anycast/openstack/notifications.info → balanced
}
