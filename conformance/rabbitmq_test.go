package conformance_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/amqp1kit/amqp1kit/conformance"
	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/testenv/rabbitmq"
)

var rabbit = rabbitmq.Shared{Prefix: "amqp1kit-conformance-rabbitmq-"}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := rabbit.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
	}
	os.Exit(code)
}

// TestRabbitMQ runs the suite against RabbitMQ 3.10's AMQP 1.0 plugin (a private
// node on 127.0.0.1, Debian's rabbitmq-server), a real broker independent of
// amqp1kit. Its addresses are /queue/NAME (declared on attach) and /topic/KEY
// (amq.topic; each consumer gets a queue of its own).
func TestRabbitMQ(t *testing.T) {
	t.Parallel()
	if err := rabbitmq.Installed(); err != nil {
		peers.Missing(t, "RabbitMQ: %v", err)
	}
	node, err := rabbit.Get()
	if err != nil {
		peers.Missing(t, "RabbitMQ did not start: %v", err)
	}
	t.Logf("RabbitMQ node at %s (pid %d)", node.URL, node.PID)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		h := conformance.BrokerAt("RabbitMQ 3.10 (rabbitmq_amqp1_0)", node.URL)
		h.Queue = func(name string) string { return "/queue/" + name }
		h.Topic = func(name string) string { return "/topic/" + name }
		h.Differences = rabbitmq.ConformanceDifferences
		return h
	})
}
