package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
)

// The floor's relay and server: plain TCP, no protocol, so that a request and its reply
// cost what crossing three processes costs here (four sends and wake-ups each way through
// the loopback interface) and nothing else.

// listenAndSay listens on a free port of 127.0.0.1 and prints
// {"event":"listening","addr":...} for the harness.
func listenAndSay() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(os.Stdout).Encode(workerLine{Event: "listening", Addr: ln.Addr().String()}); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// runRelay accepts connections and relays each to -to, both ways, reading into a buffer
// and writing what it read (as an intermediary does; no splice). It runs until killed.
func runRelay(args []string) int {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	to := fs.String("to", "", "address to relay to")
	if err := fs.Parse(args); err != nil || *to == "" {
		return 2
	}
	ln, err := listenAndSay()
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		return 1
	}
	for {
		in, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			return 1
		}
		go func() {
			out, err := net.Dial("tcp", *to)
			if err != nil {
				fmt.Fprintln(os.Stderr, "relay:", err)
				in.Close()
				return
			}
			go pump(out, in)
			pump(in, out)
		}()
	}
}

// pump copies from src to dst through a 32 KiB buffer, one write per read, and closes
// both when either side ends.
func pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// runTCPServer answers every -size bytes it reads with as many bytes. It runs until
// killed.
func runTCPServer(args []string) int {
	fs := flag.NewFlagSet("tcp-server", flag.ContinueOnError)
	size := fs.Int("size", 1024, "request and reply size")
	if err := fs.Parse(args); err != nil || *size < 1 {
		return 2
	}
	ln, err := listenAndSay()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcp-server:", err)
		return 1
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcp-server:", err)
			return 1
		}
		go func() {
			defer conn.Close()
			buf := make([]byte, *size)
			for {
				if _, err := io.ReadFull(conn, buf); err != nil {
					return
				}
				if _, err := conn.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}
