package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/amqp1kit/amqp1kit/fakebroker"
)

// brokerLimitFlags are serve's flags for the fake broker's queue limits.
type brokerLimitFlags struct {
	BrokerQueueLimit int64    `name:"broker-queue-limit" placeholder:"BYTES" help:"Bytes of messages a queue of the broker holds at most, as qpidd's default-queue-limit (a sender whose message would go beyond is detached with resource-limit-exceeded); 0 for no limit. Default: the --broker-config file's default-queue-limit, else 104857600, qpidd's."`
	BrokerMaxCount   int      `name:"broker-max-count" placeholder:"N" help:"Messages a queue of the broker holds at most, as qpid.max_count on every queue; 0 (the default) for no count limit."`
	BrokerMaxConns   int      `name:"broker-max-connections" placeholder:"N" help:"Client connections the broker serves at once, as qpidd's max-connections (one more is closed at once); 0 for no limit. Default: the --broker-config file's max-connections, else 500, qpidd's."`
	BrokerLimit      []string `name:"broker-limit" sep:"none" placeholder:"PATTERN=BYTES[,COUNT]" help:"Limits for the broker's queues whose names (or a subscription's topic) match PATTERN, a POSIX basic regular expression as queue-patterns: BYTES as --broker-queue-limit, COUNT as --broker-max-count (0 keeps the default, -1 for none). Repeatable; the first match wins."`
}

// zeroMeansNone maps the value of a limit flag, where 0 means no limit, to the
// broker's option, where -1 does; a negative value is a usage error.
func zeroMeansNone[T int | int64](flag string, v T) (T, error) {
	switch {
	case v < 0:
		return 0, usageError{fmt.Errorf("--%s %d is negative (0 means no limit)", flag, v)}
	case v == 0:
		return -1, nil
	}
	return v, nil
}

// apply sets the limit options the flags give; a flag not given leaves the broker's
// (or its config file's) default.
func (f *brokerLimitFlags) apply(kctx *kong.Context, o *fakebroker.Options) error {
	if flagGiven(kctx, "broker-queue-limit") {
		v, err := zeroMeansNone("broker-queue-limit", f.BrokerQueueLimit)
		if err != nil {
			return err
		}
		o.QueueLimit = v
	}
	if f.BrokerMaxCount < 0 {
		return usageError{fmt.Errorf("--broker-max-count %d is negative (0 means no limit)", f.BrokerMaxCount)}
	}
	o.MaxDepth = f.BrokerMaxCount
	if flagGiven(kctx, "broker-max-connections") {
		v, err := zeroMeansNone("broker-max-connections", f.BrokerMaxConns)
		if err != nil {
			return err
		}
		o.MaxConnections = v
	}
	for _, spec := range f.BrokerLimit {
		l, err := parseQueueLimit(spec)
		if err != nil {
			return usageError{fmt.Errorf("--broker-limit %q: %w", spec, err)}
		}
		o.QueueLimits = append(o.QueueLimits, l)
	}
	return nil
}

// parseQueueLimit reads PATTERN=BYTES[,COUNT] (the last = separates the pattern).
func parseQueueLimit(spec string) (fakebroker.QueueLimit, error) {
	i := strings.LastIndexByte(spec, '=')
	if i <= 0 {
		return fakebroker.QueueLimit{}, fmt.Errorf("want PATTERN=BYTES[,COUNT]")
	}
	l := fakebroker.QueueLimit{Pattern: spec[:i]}
	size, count, hasCount := strings.Cut(spec[i+1:], ",")
	var err error
	if l.MaxSize, err = strconv.ParseInt(size, 10, 64); err != nil {
		return l, fmt.Errorf("BYTES %q is not a number", size)
	}
	if hasCount {
		if l.MaxCount, err = strconv.Atoi(count); err != nil {
			return l, fmt.Errorf("COUNT %q is not a number", count)
		}
	}
	return l, nil
}
