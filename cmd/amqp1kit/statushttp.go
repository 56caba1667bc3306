package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/statuspage"
)

// loopbackAddr checks that addr (serve --http) is host:port on a loopback address:
// 127.0.0.0/8, ::1 or localhost. The status page has no authentication, so serve
// refuses any other (a usage error): reach it from elsewhere through a tunnel.
func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError{fmt.Errorf("--http %q: %w (want host:port, e.g. 127.0.0.1:8672)", addr, err)}
	}
	if isLoopback(host) {
		return nil
	}
	return usageError{fmt.Errorf("--http %q: the status page is served on loopback only (127.0.0.1, ::1 or localhost); it has no authentication", addr)}
}

// isLoopback reports whether host (a name or an IP address, IPv6 in brackets or
// not) is localhost or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// serveStatus serves the status page of the fakes (either may be nil) on addr and
// returns its URL and a function that stops it.
func serveStatus(addr string, r *fakerouter.Router, b *fakebroker.Broker, logger *slog.Logger) (string, func() error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--http: %w", err)
	}
	srv := &http.Server{
		Handler:           loopbackHostOnly(statuspage.New(statuspage.Options{Router: r, Broker: b})),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("status page stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String() + "/", srv.Close, nil
}

// loopbackHostOnly refuses requests whose Host names anything but a loopback address
// or localhost: a web page elsewhere whose name was made to resolve to 127.0.0.1 (DNS
// rebinding) cannot read the status page through a browser.
func loopbackHostOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hp, _, err := net.SplitHostPort(host); err == nil {
			host = hp
		}
		if !isLoopback(host) {
			http.Error(w, "amqp1kit: the status page answers requests for a loopback host only", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}
