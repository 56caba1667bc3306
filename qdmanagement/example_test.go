package qdmanagement_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/qdmanagement"
)

// Ask a router (here amqp1kit's fake one) which addresses have consumers, as
// qdstat -a shows them.
func Example() {
	r, err := fakerouter.Run(nil)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A consumer on an address of the guide's table.
	conn, err := amqp.Dial(ctx, r.URL(), nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		panic(err)
	}
	if _, err := sess.NewReceiver(ctx, "broadcast.compute.fanout", nil); err != nil {
		panic(err)
	}

	c, err := qdmanagement.Dial(ctx, r.URL(), nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	addrs, err := c.Query(ctx, qdmanagement.TypeAddress, "name", "distribution", "subscriberCount")
	if err != nil {
		panic(err)
	}
	for _, a := range addrs.Maps() {
		// Mobile addresses (M0...) with consumers; the client's own reply address
		// (Ltemp...) has one too.
		name, _ := a["name"].(string)
		if strings.HasPrefix(name, "M0") && a["subscriberCount"] != uint32(0) {
			fmt.Println(name, a["distribution"], a["subscriberCount"])
		}
	}
	// Output:
	// M0broadcast.compute.fanout multicast 1
}
