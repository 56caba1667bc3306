package driver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var validJSONSeeds = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `truee`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-`, `1e`,
	`-12.5e-3`, `"x"`, `"\u00e9"`, `"\u00g9"`, `"\u12"`, `"\x"`, `"\/\b\f\n\r\t\"\\"`, "\"\x01\"", "\"\x7f\xff\xfe\"", `"abc`,
	`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1, [2, [3]]]`, `{}`, `{ }`, `{"a":1}`, `{"a" : 1 , "b":[true,null]}`,
	`{"a":}`, `{"a" 1}`, `{a:1}`, `{"a":1,}`, `{,}`, `{"a":1}}`, ` {"a":1} `, "\t\r\n[1]\n", `1 2`, `[1]x`,
	`{"request": {"method": "echo", "args": {"payload": "xxxx"}}, "context": {}}`, `{"response": [1, {"x": "é"}]}`,
}

// FuzzPyRaw: appendPyRaw accepts exactly what json.Valid accepts (jsontext with
// invalid UTF-8 and repeated names allowed), and writes ASCII JSON that
// encoding/json decodes as it decodes the input (numbers as they are).
func FuzzPyRaw(f *testing.F) {
	for _, s := range validJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := appendPyRaw(nil, b)
		if valid := json.Valid(b); (err == nil) != valid {
			t.Fatalf("appendPyRaw(%q): %v, json.Valid %v", b, err, valid)
		}
		if err != nil {
			return
		}
		for _, c := range out {
			if c >= utf8.RuneSelf {
				t.Fatalf("appendPyRaw(%q) = %q: not ASCII", b, out)
			}
		}
		if got, want := decodeNumbers(t, out), decodeNumbers(t, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("appendPyRaw(%q) = %q: decodes as %#v, the input as %#v", b, out, got, want)
		}
	})
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return v
}

func TestPyRawFormat(t *testing.T) {
	for in, want := range map[string]string{
		` { "a" :[1 ,2.50e1,"x"], "\u00e9\ud83d\ude00":{"b":null} , "c": "\ud800\/\u0041\t\u007f\x" } `: ``,
		` { "a" :[1 ,2.50e1,"x"], "\u00e9\ud83d\ude00":{"b":null} , "c": "\ud800\/\u0041\t\u007f" } `:   `{"a": [1, 2.50e1, "x"], "\u00e9\ud83d\ude00": {"b": null}, "c": "\ufffd/A\t\u007f"}`,
		"\"\xff\xe9t\u00e9\"":             `"\ufffd\ufffdt\u00e9"`,
		`{"a": 1, "a": 2}`:                `{"a": 1, "a": 2}`,
		`[[], {}, [{}], -0, true, false]`: `[[], {}, [{}], -0, true, false]`,
		`[1] [2]`:                         ``,
	} {
		out, err := appendPyRaw(nil, []byte(in))
		if string(out) != want || (err == nil) != (want != "") {
			t.Errorf("appendPyRaw(%q) = %q, %v; want %q", in, out, err, want)
		}
	}
}

func TestPyRawDepth(t *testing.T) {
	const maxDepth = 10000 // encoding/json's and jsontext's
	for _, n := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		for _, tc := range []struct{ open, close string }{{"[", "]"}, {`{"a":`, "}"}, {`[{"a":`, "}]"}} {
			reps := n
			if len(tc.close) == 2 { // two levels a repetition: n or n+1 levels
				reps = (n + 1) / 2
			}
			b := []byte(strings.Repeat(tc.open, reps) + "1" + strings.Repeat(tc.close, reps))
			if _, err := appendPyRaw(nil, b); (err == nil) != json.Valid(b) {
				t.Errorf("%d × %s: appendPyRaw %v, json.Valid %v", reps, tc.open, err, json.Valid(b))
			}
			body := `{"response": ` + string(b) + `}` // one level more
			res, ok := unmarshalReplyFast(body)
			want, err := unmarshalReplySlow(body)
			if ok != (err == nil) || ok && !bytes.Equal(res, want) {
				t.Errorf("%d × %s in a reply: fast path %v, encoding/json %v", reps, tc.open, ok, err)
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
