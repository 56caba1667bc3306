package driver

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestSplitVersionAsSplitN(t *testing.T) {
	for _, v := range []string{"", "1", "1.0", "1.2.3", "1.2.3.4", "1..2", ".", "a.b", "2.x", "10.20", " 1.2", "1.-2", "+1.2"} {
		parts := strings.SplitN(v, ".", 3)
		var want [3]int
		for i, p := range parts {
			want[i], _ = strconv.Atoi(p)
		}
		if a, b, c := splitVersion(v); [3]int{a, b, c} != want {
			t.Errorf("splitVersion(%q) = %d, %d, %d; want %v", v, a, b, c, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { versionCompatible("1.0", "1.0") }); n != 0 {
		t.Errorf("versionCompatible allocates %v times", n)
	}
}

// TestMarshalRequestAsOrderedMap: marshalRequest writes what pyJSON writes for the
// ordered document of Python's marshal_request.
func TestMarshalRequestAsOrderedMap(t *testing.T) {
	reference := func(rpcCtx map[string]any, msg rpcMessage, callMonitor float64) (string, error) {
		if msg.Args == nil {
			msg.Args = map[string]any{}
		}
		if rpcCtx == nil {
			rpcCtx = map[string]any{}
		}
		req := orderedMap{{"method", msg.Method}, {"args", msg.Args}}
		if msg.Namespace != "" {
			req = append(req, kv{"namespace", msg.Namespace})
		}
		if msg.Version != "" {
			req = append(req, kv{"version", msg.Version})
		}
		body := orderedMap{{"request", req}, {"context", rpcCtx}}
		if callMonitor > 0 {
			body = append(body, kv{"call_monitor_timeout", callMonitor})
		}
		return pyJSON(body)
	}
	for _, tc := range []struct {
		ctx map[string]any
		msg rpcMessage
		cmt float64
	}{
		{nil, rpcMessage{Method: "echo"}, 0},
		{map[string]any{}, rpcMessage{Method: "echo", Args: map[string]any{}}, 0},
		{map[string]any{"user": "é", "n": 1, "l": []any{1, "x"}}, rpcMessage{Method: "mé\"thod", Args: map[string]any{"b": 1.5, "a": "x", "c": nil}, Namespace: "ns", Version: "1.2"}, 30},
		{nil, rpcMessage{Method: "m", Args: map[string]any{"v": 1}, Version: "2.0"}, 0.5},
		{nil, rpcMessage{Method: "m", Args: map[string]any{"v": 1}, Namespace: "n"}, 1e-7},
	} {
		got, err := marshalRequest(tc.ctx, tc.msg, tc.cmt)
		want, werr := reference(tc.ctx, tc.msg, tc.cmt)
		if got != want || err != nil || werr != nil {
			t.Errorf("marshalRequest(%v, %+v, %v) = %s, %v; want %s, %v", tc.ctx, tc.msg, tc.cmt, got, err, want, werr)
		}
	}
	if _, err := marshalRequest(nil, rpcMessage{Method: "m", Args: map[string]any{"x": math.NaN()}}, 0); err == nil {
		t.Error("a NaN argument: no error")
	}
}
