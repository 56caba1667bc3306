// Package driver is an oslo.messaging-compatible AMQP 1.0 driver for Go services, on
// github.com/Azure/go-amqp. A Go service joins an OpenStack bus the way a Python
// service does: the same transport URL, the same [oslo_messaging_amqp] options, the
// same addresses (legacy, routable, or chosen from the intermediary's open frame), the
// same message bodies and the same acknowledgement semantics, so a Go client calls a
// Python server and the reverse.
//
// A Transport is one connection (opened lazily, failing over across the URL's hosts
// with back-off); RPCClient calls and casts, RPCServer serves Endpoints, Notifier
// publishes and Listener receives notifications:
//
//	t, _ := driver.NewTransport("amqp://127.0.0.1:5672", nil)
//	defer t.Close()
//	client := driver.NewRPCClient(t, driver.Target{Topic: "compute"}, nil)
//	result, err := client.Call(ctx, nil, "echo", map[string]any{"value": 1})
//
// Errors: ErrTimeout (oslo's MessagingTimeout), ErrDeliveryFailure
// (MessageDeliveryFailure), *RemoteError (an exception raised by the server),
// *PeerError (the intermediary refused what oslo needs), *ConfigError (a bad URL,
// option or file); use errors.Is and errors.As.
package driver
