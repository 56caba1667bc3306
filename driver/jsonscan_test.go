package driver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var validJSONSeeds = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `truee`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-`, `1e`,
	`-12.5e-3`, `"x"`, `"\u00e9"`, `"\u00g9"`, `"\u12"`, `"\x"`, `"\/\b\f\n\r\t\"\\"`, "\"\x01\"", "\"\x7f\xff\xfe\"", `"abc`,
	`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1, [2, [3]]]`, `{}`, `{ }`, `{"a":1}`, `{"a" : 1 , "b":[true,null]}`,
	`{"a":}`, `{"a" 1}`, `{a:1}`, `{"a":1,}`, `{,}`, `{"a":1}}`, ` {"a":1} `, "\t\r\n[1]\n", `1 2`, `[1]x`,
	`{"request": {"method": "echo", "args": {"payload": "xxxx"}}, "context": {}}`, `{"response": [1, {"x": "é"}]}`,
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range validJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}

func TestValidJSONDepth(t *testing.T) {
	for _, n := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		for _, tc := range []struct{ open, close string }{{"[", "]"}, {`{"a":`, "}"}, {`[{"a":`, "}]"}} {
			reps := n
			if len(tc.close) == 2 { // two levels a repetition: n or n+1 levels
				reps = (n + 1) / 2
			}
			b := []byte(strings.Repeat(tc.open, reps) + "1" + strings.Repeat(tc.close, reps))
			if got, want := validJSON(b), json.Valid(b); got != want {
				t.Errorf("%d × %s: validJSON %v, json.Valid %v", reps, tc.open, got, want)
			}
		}
	}
}

var requestBodySeeds = []string{
	`{"request": {"method": "echo", "args": {"payload": "xxxx"}}, "context": {}}`,
	`{"request": {"method": "echo", "args": {"a": 1, "b": [1, {"c": null}], "d": "\u00e9"}, "namespace": "ns", "version": "1.2"}, "context": {"user": "u", "n": 1.5}, "call_monitor_timeout": 4}`,
	`{"request": {"method": "echo", "args": {}}, "context": {}, "call_monitor_timeout": null}`,
	`{"request": {"method": "echo"}, "context": {}}`,
	`{"request": {"method": "echo", "args": null}, "context": null}`,
	`{"request": {"method": "echo", "args": {"a": 1, "a": 2}}, "context": {}}`,
	`{"request": {"method": "echo", "method": "other", "args": {}}, "context": {}}`,
	`{"request": {"Method": "echo", "args": {}}, "context": {}}`,
	`{"Request": {"method": "echo", "args": {}}, "context": {}}`,
	`{"request": {"method": "ech\u006f", "args": {"\u0061": 1}}, "context": {}}`,
	`{"request": {"method": 5, "args": {}}, "context": {}}`,
	`{"request": {"method": null, "args": {}, "namespace": null, "version": null}, "context": {}}`,
	`{"request": {"method": "echo", "args": []}, "context": {}}`,
	`{"request": "x", "context": {}}`,
	`{"request": null, "context": {}}`,
	`{"context": {}}`,
	`{"request": {"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\", \"args\": {}}"}, "context": {}}`,
	`{"request": {"oslo.version": "3.0", "oslo.message": "{}"}, "context": {}}`,
	`{"request": {"OSLO.VERSION": "2.0", "oslo.message": "{}", "method": "m"}, "context": {}}`,
	`{"request": {"method": "echo", "args": {"p": "\"oslo.version\""}}, "context": {}}`,
	`{"request": {"method": "echo", "args": {}}, "context": "x", "extra": [1, 2]}`,
	`{"request": {"method": "echo", "args": {}}, "context": {}, "call_monitor_timeout": "x"}`,
	`{"request": {"method": "echo", "args": {}}, "context": {}, "call_monitor_timeout": 1e400}`,
	`{"request": {"method": "é", "args": {"é": 1}}, "context": {}}`,
	`{"request": {"method": "echo", "args": {}}} trailing`,
	` {"request" : {"method":"echo","args":{ "x" : [ ] } } , "context" : { } } `,
	`[1]`, `{}`, ``, `{"request": {"method": "echo", "args": {"ſ": 1, "K": 2}}, "requeſt": {}}`,
}

// FuzzDecodeRequest: decodeRequestFast, when it decodes a body, decodes it as
// encoding/json does (decodeRequestSlow), and accepts nothing that it refuses.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range requestBodySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		req, cmt, ok := decodeRequestFast(text)
		if !ok {
			return
		}
		want, wantCmt, err := decodeRequestSlow(text)
		if err != nil {
			t.Fatalf("%q: fast path decoded %+v, encoding/json refused: %v", text, req, err)
		}
		if !reflect.DeepEqual(req, want) || cmt != wantCmt {
			t.Fatalf("%q: fast path %+v %v, encoding/json %+v %v", text, req, cmt, want, wantCmt)
		}
	})
}

func TestDecodeRequestFastTakesOsloBodies(t *testing.T) {
	for _, s := range requestBodySeeds[:4] {
		if _, _, ok := decodeRequestFast(s); !ok {
			t.Errorf("%q: not decoded by the fast path", s)
		}
	}
}

var replyBodySeeds = []string{
	`{"response": "x"}`, `{"response": null}`, `{}`, `{"response": {"a": [1, 2.5, "\u00e9"]}}`,
	`{"failure": "{\"class\": \"E\", \"module\": \"m\", \"message\": \"boom\", \"tb\": [], \"args\": [], \"kwargs\": {}}"}`,
	`{"response": 1, "failure": null}`, `{"response": 1, "response": 2}`, `{"Response": 1}`, `{"respons\u0065": 1}`,
	`{"response": 1} x`, `[1]`, `"x"`, ``, `{"response": 1, "ending": true}`, `{"response": 1`,
}

// FuzzUnmarshalReply: unmarshalReplyFast agrees with encoding/json.
func FuzzUnmarshalReply(f *testing.F) {
	for _, s := range replyBodySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		res, ok := unmarshalReplyFast(text)
		if !ok {
			return
		}
		want, err := unmarshalReplySlow(text)
		if err != nil || !bytes.Equal(res, want) {
			t.Fatalf("%q: fast path %s, encoding/json %s, %v", text, res, want, err)
		}
	})
}

func FuzzPlainRun(f *testing.F) {
	f.Add([]byte("abcdefghijklmnop\"q"))
	f.Add([]byte("abcdefgh\x7fijklmnop\\q\x1f\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := 0; i <= len(b); i++ {
			want := i
			for want < len(b) && b[want] >= 0x20 && b[want] < 0x7f && b[want] != '"' && b[want] != '\\' {
				want++
			}
			if got, gotS := plainRun(b, i), plainRun(string(b), i); got != want || gotS != want {
				t.Fatalf("plainRun(%q, %d) = %d, %d (string); want %d", b, i, got, gotS, want)
			}
		}
	})
}
