// Package driver is an oslo.messaging-compatible AMQP 1.0 driver for Go services, on
// github.com/Azure/go-amqp. A Go service joins an OpenStack bus the way a Python
// service does: the same transport URL, the same [oslo_messaging_amqp] options, the
// same addresses (legacy, routable, or chosen from the intermediary's open frame), the
// same message bodies and the same acknowledgement semantics, so a Go client calls a
// Python server and the reverse.
//
// # Use
//
// A Transport is one AMQP connection, shared by everything built on it; RPCClient
// calls and casts, RPCServer serves Endpoints, Notifier publishes and Listener
// receives notifications:
//
//	t, err := driver.NewTransport("amqp://user:pass@router1:5672,router2:5672", nil)
//	if err != nil { ... }             // a *ConfigError: bad URL, option or TLS file
//	defer t.Close()
//	client := driver.NewRPCClient(t, driver.Target{Topic: "compute"}, nil)
//	result, err := client.Call(ctx, nil, "echo", map[string]any{"value": 1})
//
// Options come from DefaultOptions, LoadConfig (an oslo.config file) or Options.Set,
// and the URL's query overrides them (amqp://host/?ssl=1&link_retry_delay=5), as in
// Python. The examples run against fakerouter, an in-process qdrouterd.
//
// # Connection, failover and reconnect
//
// The connection opens lazily, on the first call, cast, notification or listener, to
// the URL's first host. When it is lost (or an attempt fails) the transport waits
// connection_retry_interval and tries the next host, multiplying the delay by
// connection_retry_backoff after each failure up to connection_retry_interval_max;
// the delay goes back to the interval once a connection opens. On the new connection
// every server and listener is attached again, with addresses worked out from the new
// peer, and a new reply address is obtained. As in Python:
//
//   - a send not written yet waits for the new connection, and each failed connection
//     attempt uses up one of its retries (ClientOptions.Retry, NotifierOptions.Retry);
//   - a message written but not acknowledged when the connection drops fails at once
//     with ErrDeliveryFailure (it may have arrived: it is not sent twice);
//   - a call already acknowledged and waiting for its reply ends with ErrTimeout at its
//     deadline, since its reply address is gone;
//   - a message the intermediary released (or modified without failure) is sent again
//     after link_retry_delay while retries remain; a listener link the peer detached is
//     attached again after link_retry_delay;
//   - sender links idle for default_sender_link_timeout are detached, and the next send
//     to their address attaches a new one.
//
// Failures that retrying cannot fix — wrong credentials, no SASL mechanism in common, a
// certificate that does not verify, an intermediary that refuses the dynamic reply
// link — fail sends at once (once every host has been tried) instead of waiting for
// their timeout.
//
// # TLS and SASL
//
// TLS is on with ssl=True, ssl_ca_file or ssl_cert_file, from the first byte, on the
// URL's port (no automatic 5671). The server is verified against ssl_ca_file (or the
// system's CAs with ssl=True) and the URL's host name, or with ssl_verify_vhost the
// URL's virtual host; without a peer name only the chain is verified, and without any
// CA the server is not verified, as pyngus does. ssl_cert_file, ssl_key_file and
// ssl_key_password present a client certificate (legacy encrypted PEM keys are
// decrypted). SASL is used when the URL has a user name or a sasl_* option is set:
// EXTERNAL with a client certificate, PLAIN with a user name (sasl_default_realm
// appended), otherwise ANONYMOUS, limited to the space-separated sasl_mechanisms. A
// URL without credentials does no SASL at all, as Python.
//
// # Errors
//
// ErrTimeout (oslo's MessagingTimeout), ErrDeliveryFailure (MessageDeliveryFailure),
// ErrClosed, *RemoteError (an exception raised by the server: a Go method's error is
// sent as Python's builtins.RuntimeError, a *RemoteError as it is, and a panic is
// recovered and sent as RuntimeError), *PeerError (the intermediary refused what oslo
// needs) and *ConfigError (a bad URL, option or file, naming it). Use errors.Is and
// errors.As: an error reaches both its sentinel and its cause, so the underlying
// go-amqp errors (*amqp.Error with the peer's condition, *amqp.LinkError,
// *amqp.ConnError), net, crypto/tls and crypto/x509 errors stay reachable. A send
// that could not go because no connection could be made carries the last attempt's
// error:
//
//	amqp1kit driver: call echo: messaging timeout: not sent in time: not connected: dial tcp 127.0.0.1:5672: connect: connection refused
//
// # Logging
//
// TransportOptions.Logger (a *slog.Logger, discarded by default) receives connection
// events — connected, lost, reconnecting with the delay and host, attempts that
// failed — links re-attached or purged, resends, and errors that have no caller to
// return to (a reply that could not be sent, a notification that cannot be parsed, a
// method that panicked).
//
// # Differences from the Python driver
//
// The first host is the URL's first, not a random one. Notifier.Notify returns send
// errors instead of logging and swallowing them. Stopping a server or listener detaches
// its links (Python keeps them until the transport is cleaned up). The container-id
// and open properties follow Python's; go-amqp always sends the open frame's hostname.
// The trace option has no effect (go-amqp logs frames only in debug builds).
package driver
