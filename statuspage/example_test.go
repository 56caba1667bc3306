package statuspage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/statuspage"
)

// A test serves the status page of its fake broker: a person can open the URL while
// the test runs (log it), and the test itself reads the JSON behind the page.
func ExampleNew() {
	b, err := fakebroker.Run(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	srv := httptest.NewServer(statuspage.New(statuspage.Options{Broker: b}))
	defer srv.Close()
	// In a test: t.Logf("status page: %s", srv.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, b.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "unicast.example", nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := snd.Send(ctx, amqp.NewMessage([]byte("hello")), nil); err != nil {
		log.Fatal(err)
	}

	resp, err := http.Get(srv.URL + "/api/broker")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var st statuspage.BrokerState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		log.Fatal(err)
	}
	for _, n := range st.Nodes {
		fmt.Println(n.Kind, n.Name, "depth", n.Depth, "enqueued", n.Counts.Enqueued)
	}
	fmt.Println("connections", len(st.Connections), "links", len(st.Links))
	// Output:
	// queue unicast.example depth 1 enqueued 1
	// connections 1 links 1
}
