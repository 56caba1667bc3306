package driver

import (
	"strings"
	"testing"
)

// BenchmarkCallCodec is the JSON work of one call with benchmatrix's 1 KiB echo
// payload, without I/O: the client encodes the request, the server decodes it and
// encodes the echoed argument as the reply, the client decodes the reply.
func BenchmarkCallCodec(b *testing.B) {
	args := map[string]any{"payload": strings.Repeat("x", 1024)}
	b.ReportAllocs()
	for range b.N {
		body, err := marshalRequest(nil, rpcMessage{Method: "echo", Args: args}, 0)
		if err != nil {
			b.Fatal(err)
		}
		req, _, err := decodeRequest(body)
		if err != nil {
			b.Fatal(err)
		}
		reply, err := marshalReply(req.Args["payload"])
		if err != nil {
			b.Fatal(err)
		}
		res, err := unmarshalReply(reply)
		if err != nil || len(res) != 1026 {
			b.Fatal(err, len(res))
		}
	}
}
