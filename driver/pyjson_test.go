package driver

import (
	"encoding/json"
	"math"
	"testing"
)

// pyJSONCases are values whose pyJSON text must equal Python's json.dumps of the
// same JSON value (json.loads of encoding/json's text, which keeps map keys sorted).
// Numbers inside a json.RawMessage are copied as they are (Python would reformat
// "2.50" as "2.5").
var pyJSONCases = []any{
	"plain",
	"",
	"héllo ☃ — ünïcödé",
	"astral 😀 𝄞",
	"controls \x00\x01\x1f and DEL \x7f",
	`quote " backslash \ slash /`,
	"html <script>&amp;</script>",
	"separators \u2028 \u2029",
	"\b\f\n\r\t",
	"invalid utf-8 \xff\xfe",
	nil, true, false,
	0, -1, 42, int64(math.MaxInt64), uint64(math.MaxUint64),
	0.5, 0.1, 1.5e300, 1e21, 1e20, 123456789.0, float32(0.25),
	[]any{1, "x", nil, true, []any{}, map[string]any{}},
	[]string{"a", "é"},
	map[string]any{"b": 1, "a": []any{1, "two", 3.5}, "c": map[string]any{"z": nil, "y": "ÿ"}, "é": "key"},
	orderedMap{{"z", 1}, {"a", orderedMap{{"y", "ÿ"}, {"b", []any{}}}}, {"m", "x"}},
	json.RawMessage(` { "k" : [1, 2.5, "\u00e9\ud83d\ude00", "\"q\""] , "h" : "<\u003e&" , "e":{} } `),
	json.RawMessage(`"just a string \/ with \u0041"`),
	struct {
		A int    `json:"a"`
		B string `json:"b"`
		C []int  `json:"c"`
	}{1, "é", []int{1, 2}},
	map[string]any{"nested": json.RawMessage(`{"x":[true,null]}`), "list": []any{json.RawMessage(`1`)}},
}

func TestPyJSONKnownOutput(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{orderedMap{{"request", orderedMap{{"method", "echo"}, {"args", map[string]any{"value": "h\u00e9"}}}}, {"context", map[string]any{}}},
			`{"request": {"method": "echo", "args": {"value": "h\u00e9"}}, "context": {}}`},
		{"a\x7fb<>&😀", `"a\u007fb<>&\ud83d\ude00"`},
		{json.RawMessage(`[ 1 ,{"a" :"\u00E9"} ]`), `[1, {"a": "\u00e9"}]`},
		{map[string]any{"b": 2.0, "a": 1e-7}, `{"a": 1e-7, "b": 2}`},
	} {
		got, err := pyJSON(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("pyJSON(%#v) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), map[string]any{"x": math.Inf(-1)}, func() {}} {
		if _, err := pyJSON(bad); err == nil {
			t.Errorf("pyJSON(%v): no error", bad)
		}
	}
}

// TestPyJSONMatchesPython compares pyJSON with the real json.dumps.
func TestPyJSONMatchesPython(t *testing.T) {
	var texts, want []string
	for _, v := range pyJSONCases {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(raw))
	}
	runOslo(t, `
import json, sys
print(json.dumps([json.dumps(json.loads(t)) for t in json.load(sys.stdin)]))
`, texts, &want)
	for i, v := range pyJSONCases {
		got, err := pyJSON(v)
		if err != nil {
			t.Errorf("case %d (%#v): %v", i, v, err)
			continue
		}
		if got != want[i] {
			t.Errorf("case %d (%#v):\n got %s\nwant %s (Python json.dumps)", i, v, got, want[i])
		}
	}
}

func BenchmarkPyJSONRequest(b *testing.B) {
	ctx := map[string]any{"user": "u", "project_id": "p", "roles": []any{"admin", "member"}}
	args := map[string]any{"value": map[string]any{"x": 1, "s": "héllo"}}
	b.ReportAllocs()
	for range b.N {
		if _, err := marshalRequest(ctx, rpcMessage{Method: "echo", Args: args}, 0); err != nil {
			b.Fatal(err)
		}
	}
}
