package fakerouter

import "github.com/amqp1kit/amqp1kit/internal/frametrace"

// Frame describes one frame the router sent or received, for Options.Trace.
type Frame = frametrace.Frame

var newFrame = frametrace.New
