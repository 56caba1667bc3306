package fakebroker_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/fakebroker"
)

// A notifier sends before any listener exists: the broker stores the message and
// hands it over when a listener attaches.
func ExampleRun() {
	b, err := fakebroker.Run(nil) // 127.0.0.1 on a free port
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

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
	addr := "unicast.openstack.notifications.info"
	snd, err := sess.NewSender(ctx, addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := snd.Send(ctx, amqp.NewMessage([]byte("instance.create.end")), nil); err != nil {
		log.Fatal(err) // Send returns once the broker said accepted: stored
	}
	info, _ := b.Node(addr)
	fmt.Println(info.Kind, info.Name, "depth", info.Depth)

	rcv, err := sess.NewReceiver(ctx, addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := rcv.AcceptMessage(ctx, m); err != nil {
		log.Fatal(err)
	}
	fmt.Println("received", string(m.GetData()))
	// Output:
	// queue unicast.openstack.notifications.info depth 1
	// received instance.create.end
}

// The deployment guide's patterns: queues for exclusive and unicast, topics for
// broadcast; other addresses are refused with amqp:not-found.
func ExampleBroker_Kind() {
	b, err := fakebroker.Run(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	for _, addr := range []string{
		"exclusive.openstack.compute.node1",
		"unicast.openstack.compute",
		"broadcast.openstack.compute.all",
		"openstack.org/om/rpc/anycast/openstack/compute",
	} {
		kind, ok := b.Kind(addr)
		if !ok {
			kind = "not found"
		}
		fmt.Printf("%-48s %s\n", addr, kind)
	}
	// Output:
	// exclusive.openstack.compute.node1                queue
	// unicast.openstack.compute                        queue
	// broadcast.openstack.compute.all                  topic
	// openstack.org/om/rpc/anycast/openstack/compute   not found
}

// A broker with a journal keeps durable messages across a restart; the others are
// lost, as with qpidd.
func ExampleBroker_Restart() {
	dir, err := os.MkdirTemp("", "fakebroker-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := fakebroker.Run(&fakebroker.Options{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, b.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "unicast.jobs", nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, durable := range []bool{true, false} {
		m := amqp.NewMessage([]byte(fmt.Sprint("durable=", durable)))
		m.Header = &amqp.MessageHeader{Durable: durable}
		if err := snd.Send(ctx, m, nil); err != nil {
			log.Fatal(err)
		}
	}
	conn.Close()
	fmt.Println("before restart:", b.Depth("unicast.jobs"))
	if err := b.Restart(); err != nil {
		log.Fatal(err)
	}
	for _, m := range b.Messages("unicast.jobs") {
		fmt.Printf("after restart: %s\n", m.Body)
	}
	// Output:
	// before restart: 2
	// after restart: durable=true
}

func ExampleParseConfig() {
	cfg, err := fakebroker.ParseConfig(strings.NewReader(`
queue-patterns=exclusive
queue-patterns=unicast
topic-patterns=broadcast
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("queues:", cfg.QueuePatterns)
	fmt.Println("topics:", cfg.TopicPatterns)
	// Output:
	// queues: [exclusive unicast]
	// topics: [broadcast]
}
