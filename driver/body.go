package driver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	amqp "github.com/Azure/go-amqp"
	"github.com/go-json-experiment/json/jsontext"
)

// Message bodies as the Python driver writes them (impl_amqp1.py marshal_request,
// marshal_response, and the notifier's messagingv2 envelope): one AMQP-value string
// holding JSON.

// bodyText returns the JSON text of a received message: an amqp-value string (what
// the Python driver sends) or data sections (which Python's reader accepts too).
func bodyText(m *amqp.Message) (string, bool, error) {
	switch v := m.Value.(type) {
	case string:
		return v, true, nil
	case nil:
		if len(m.Data) > 0 {
			return string(bytes.Join(m.Data, nil)), true, nil
		}
		return "", false, nil // no body: a call-monitor heartbeat
	}
	return "", false, fmt.Errorf("message body is an amqp-value of type %T, not a JSON string", m.Value)
}

// requestBody is {"request": ..., "context": ..., "call_monitor_timeout"?: n}.
type requestBody struct {
	Request            json.RawMessage `json:"request"`
	Context            json.RawMessage `json:"context"`
	CallMonitorTimeout *float64        `json:"call_monitor_timeout,omitempty"`
}

// rpcMessage is the RPC request dict of oslo's RPCClient._make_message.
type rpcMessage struct {
	Method    string         `json:"method"`
	Args      map[string]any `json:"args"`
	Namespace string         `json:"namespace,omitempty"`
	Version   string         `json:"version,omitempty"`
}

// marshalRequest builds the body of an RPC request (calls and casts), its keys in
// the order Python's dicts give them.
func marshalRequest(rpcCtx map[string]any, msg rpcMessage, callMonitor float64) (string, error) {
	return pooledPyJSON(func(b []byte) ([]byte, error) {
		var err error
		b = append(b, `{"request": {"method": `...)
		b = appendPyString(b, msg.Method)
		b = append(b, `, "args": `...)
		if msg.Args == nil {
			b = append(b, "{}"...)
		} else if b, err = appendPyJSON(b, msg.Args); err != nil {
			return nil, err
		}
		if msg.Namespace != "" {
			b = appendPyString(append(b, `, "namespace": `...), msg.Namespace)
		}
		if msg.Version != "" {
			b = appendPyString(append(b, `, "version": `...), msg.Version)
		}
		b = append(b, `}, "context": `...)
		if rpcCtx == nil {
			b = append(b, "{}"...)
		} else if b, err = appendPyJSON(b, rpcCtx); err != nil {
			return nil, err
		}
		if callMonitor > 0 {
			if b, err = appendFloat(append(b, `, "call_monitor_timeout": `...), callMonitor, 64); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	})
}

// unmarshalRequest parses a request body; the request dict may be wrapped in the
// oslo.version 2.0 envelope, which is unwrapped (common.deserialize_msg).
func unmarshalRequest(text string) (*requestBody, json.RawMessage, error) {
	var rb requestBody
	if err := json.Unmarshal([]byte(text), &rb); err != nil {
		return nil, nil, fmt.Errorf("request body is not JSON: %w", err)
	}
	inner, err := unwrapEnvelope(rb.Request)
	if err != nil {
		return nil, nil, err
	}
	return &rb, inner, nil
}

// decodeRequest parses the body of an RPC request into what the server's method sees,
// with the call-monitor timeout the caller asked for (0 for none). The request's
// context is decoded when it is a JSON object, and left nil otherwise.
func decodeRequest(text string) (*Request, float64, error) {
	if req, cmt, ok := decodeRequestFast(text); ok {
		return req, cmt, nil
	}
	return decodeRequestSlow(text)
}

// decodeRequestSlow is decodeRequest with encoding/json, for any body.
func decodeRequestSlow(text string) (*Request, float64, error) {
	rb, inner, err := unmarshalRequest(text)
	if err != nil {
		return nil, 0, err
	}
	var msg struct {
		Method    string                     `json:"method"`
		Args      map[string]json.RawMessage `json:"args"`
		Namespace *string                    `json:"namespace"`
		Version   *string                    `json:"version"`
	}
	if err := json.Unmarshal(inner, &msg); err != nil {
		return nil, 0, err
	}
	req := &Request{Method: msg.Method, Args: msg.Args, Version: "1.0"}
	if msg.Namespace != nil {
		req.Namespace = *msg.Namespace
	}
	if msg.Version != nil {
		req.Version = *msg.Version
	}
	_ = json.Unmarshal(rb.Context, &req.Context)
	var cmt float64
	if rb.CallMonitorTimeout != nil {
		cmt = *rb.CallMonitorTimeout
	}
	return req, cmt, nil
}

// decodeRequestFast is decodeRequest in one pass of a jsontext.Decoder, for the
// bodies that oslo's drivers write: a valid object whose "request" is an object (not
// the oslo.version 2.0 envelope) with string "method", "namespace" and "version" and
// an object "args". Anything else (a key written with escapes, or that
// encoding/json's case-insensitive matching would take for a field, a repeated
// field, a field of another type, invalid JSON) reports ok false, and decodeRequest
// takes the encoding/json path, whose results and errors are the reference: for what
// it accepts, the two give the same Request.
func decodeRequestFast(text string) (req *Request, cmt float64, ok bool) {
	r := getJSONReader([]byte(text)) // the Args alias it
	defer putJSONReader(r)
	if !r.open() {
		return nil, 0, false
	}
	var method, namespace, version, ctxRaw, cmtRaw []byte
	var args map[string]json.RawMessage
	// request reads the request dict, after its '{'.
	request := func() bool {
		for r.more() {
			key, plain, ok := r.name()
			if !ok {
				return false
			}
			k, other := knownKey(key, plain, "method", "args", "namespace", "version")
			switch {
			case k < 0:
				if !other || hasPrefixFold(key, "oslo.") || !r.skip() { // could be the envelope's
					return false
				}
				continue
			case k == 1:
				if args != nil || !r.open() {
					return false
				}
				args = map[string]json.RawMessage{}
				for r.more() {
					key, plain, ok := r.name()
					if !ok || !plain {
						return false
					}
					if _, dup := args[string(key)]; dup {
						return false
					}
					v, ok := r.value()
					if !ok {
						return false
					}
					args[string(key)] = json.RawMessage(v)
				}
				if !r.close() {
					return false
				}
				continue
			}
			v, ok := r.value()
			p := [...]*[]byte{&method, nil, &namespace, &version}[k]
			if !ok || *p != nil {
				return false
			}
			*p = v
		}
		return r.close()
	}
	seenRequest := false
	for r.more() {
		key, plain, ok := r.name()
		if !ok {
			return nil, 0, false
		}
		k, other := knownKey(key, plain, "request", "context", "call_monitor_timeout")
		switch {
		case k < 0:
			if !other || !r.skip() {
				return nil, 0, false
			}
			continue
		case k == 0:
			if seenRequest || !r.open() {
				return nil, 0, false
			}
			seenRequest = true
			if !request() {
				return nil, 0, false
			}
			continue
		}
		v, ok := r.value()
		p := [...]*[]byte{nil, &ctxRaw, &cmtRaw}[k]
		if !ok || *p != nil {
			return nil, 0, false
		}
		*p = v
	}
	if !r.close() || !seenRequest || !r.atEOF() {
		return nil, 0, false
	}
	req = &Request{Args: args, Version: "1.0"}
	if !setPlain(&req.Method, method) || !setPlain(&req.Namespace, namespace) || !setPlain(&req.Version, version) {
		return nil, 0, false
	}
	if string(ctxRaw) == "{}" {
		req.Context = map[string]any{}
	} else if ctxRaw != nil {
		_ = json.Unmarshal(ctxRaw, &req.Context)
	}
	if cmtRaw != nil {
		var p *float64
		if json.Unmarshal(cmtRaw, &p) != nil {
			return nil, 0, false
		}
		if p != nil {
			cmt = *p
		}
	}
	return req, cmt, true
}

// jsonReader reads a JSON text held in memory with a jsontext.Decoder, which then
// parses the text in place (a bytes.Buffer's): the values it returns are slices of
// the text. It accepts what json.Valid accepts: invalid UTF-8 in strings and
// repeated names are allowed (the callers look for repeated fields themselves), and
// jsontext's nesting limit is encoding/json's (10000).
type jsonReader struct {
	in  []byte
	buf bytes.Buffer
	d   jsontext.Decoder
}

// jsonReaders pools jsonReaders: a Decoder is large, and keeps its state buffers.
var jsonReaders = sync.Pool{New: func() any { return new(jsonReader) }}

func getJSONReader(in []byte) *jsonReader {
	r := jsonReaders.Get().(*jsonReader)
	r.in = in
	r.buf = *bytes.NewBuffer(in)
	r.d.Reset(&r.buf, jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
	return r
}

func putJSONReader(r *jsonReader) {
	r.in, r.buf = nil, bytes.Buffer{}
	r.d.Reset(&r.buf) // drops its reference to the text
	jsonReaders.Put(r)
}

// value reads the next value (or object name) and returns its text, a slice of the
// input whose capacity ends with it.
func (r *jsonReader) value() ([]byte, bool) {
	v, err := r.d.ReadValue()
	if err != nil {
		return nil, false
	}
	end := int(r.d.InputOffset())
	return r.in[end-len(v) : end : end], true
}

// name reads the next name of an object: its text between the quotes, escapes not
// decoded, and whether it is plain (printable ASCII without escapes).
func (r *jsonReader) name() (key []byte, plain, ok bool) {
	if r.d.PeekKind() != '"' {
		return nil, false, false
	}
	v, ok := r.value()
	if !ok {
		return nil, false, false
	}
	return v[1 : len(v)-1], isPlain(v), true
}

// skip reads the next value, which it only validates.
func (r *jsonReader) skip() bool { return r.d.SkipValue() == nil }

// open reads the '{' that starts an object.
func (r *jsonReader) open() bool {
	if r.d.PeekKind() != '{' {
		return false
	}
	_, err := r.d.ReadToken()
	return err == nil
}

// more reports whether the object being read has another member (false at its end,
// or on invalid input: close then fails).
func (r *jsonReader) more() bool { return r.d.PeekKind() == '"' }

// close reads the '}' that ends an object.
func (r *jsonReader) close() bool {
	tok, err := r.d.ReadToken()
	return err == nil && tok.Kind() == '}'
}

// atEOF reports whether only white space follows the value read.
func (r *jsonReader) atEOF() bool {
	_, err := r.d.ReadToken()
	return err == io.EOF
}

// knownKey returns the index of key among keys, or -1 with other true when it is
// none of them and encoding/json would not take it for one either (it matches field
// names case-insensitively, after decoding escapes): a key that is not plain, or
// equal to one of keys but for case, gives -1, false.
func knownKey(key []byte, plain bool, keys ...string) (int, bool) {
	if !plain {
		return -1, false
	}
	for i, k := range keys {
		if string(key) == k {
			return i, true
		}
		if bytes.EqualFold(key, []byte(k)) {
			return -1, false
		}
	}
	return -1, true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

// plainString returns the value of the JSON string raw when it is plain (printable
// ASCII without escapes), and whether it is.
func plainString(raw []byte) (string, bool) {
	if !isPlain(raw) {
		return "", false
	}
	return string(raw[1 : len(raw)-1]), true
}

// setPlain sets *dst to the value of the JSON string raw when it is plain, leaves it
// as it is when raw is nil (the field was absent), and reports false when raw is
// there but not plain.
func setPlain(dst *string, raw []byte) bool {
	if raw == nil {
		return true
	}
	s, ok := plainString(raw)
	if ok {
		*dst = s
	}
	return ok
}

// isPlain reports whether raw is a JSON string of printable ASCII without escapes:
// its bytes between the quotes are its value, as Python's json.dumps writes it.
func isPlain(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// unwrapEnvelope returns the message inside {"oslo.version": "2.0", "oslo.message":
// "<json>"}, or raw itself when it is not an envelope.
func unwrapEnvelope(raw json.RawMessage) (json.RawMessage, error) {
	var env struct {
		Version *string `json:"oslo.version"`
		Message *string `json:"oslo.message"`
	}
	if len(raw) == 0 || raw[0] != '{' || !bytes.Contains(raw, []byte(`"oslo.`)) {
		return raw, nil // not an envelope (the common case of RPC requests): no parse
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Version == nil || env.Message == nil {
		return raw, nil
	}
	if major, _, _ := strings.Cut(*env.Version, "."); major != "2" {
		return nil, fmt.Errorf("unsupported oslo.version %q (want 2.x)", *env.Version)
	}
	return json.RawMessage(*env.Message), nil
}

// marshalReply builds {"response": result}.
func marshalReply(result any) (string, error) {
	return pyJSON(orderedMap{{"response", result}})
}

// marshalFailure builds {"failure": "<json of the exception>"}, encoded twice as
// common.serialize_remote_exception does.
func marshalFailure(e *RemoteError) (string, error) {
	args := e.Args
	if args == nil {
		args = []any{e.Message}
	}
	kwargs := e.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	tb := e.Traceback
	if tb == nil {
		tb = []string{}
	}
	inner, err := pyJSON(orderedMap{
		{"class", e.Class}, {"module", e.Module}, {"message", e.Message},
		{"tb", tb}, {"args", args}, {"kwargs", kwargs},
	})
	if err != nil {
		return "", err
	}
	return pyJSON(orderedMap{{"failure", inner}})
}

// unmarshalReply parses a reply body into the result or a *RemoteError.
func unmarshalReply(text string) (json.RawMessage, error) {
	if res, ok := unmarshalReplyFast(text); ok {
		return res, nil
	}
	return unmarshalReplySlow(text)
}

// unmarshalReplyFast is unmarshalReply in one pass of a jsontext.Decoder, for a
// valid object with one "response" and no "failure" (or neither). Anything else
// reports ok false (see decodeRequestFast), and unmarshalReplySlow decides.
func unmarshalReplyFast(text string) (json.RawMessage, bool) {
	r := getJSONReader([]byte(text)) // the result aliases it
	defer putJSONReader(r)
	if !r.open() {
		return nil, false
	}
	var res []byte
	for r.more() {
		key, plain, ok := r.name()
		if !ok {
			return nil, false
		}
		switch k, other := knownKey(key, plain, "response", "failure"); {
		case k < 0 && other:
			if !r.skip() {
				return nil, false
			}
		case k == 0 && res == nil:
			if res, ok = r.value(); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	if !r.close() || !r.atEOF() {
		return nil, false
	}
	if res == nil {
		return json.RawMessage("null"), true
	}
	return res, true
}

// unmarshalReplySlow is unmarshalReply with encoding/json, for any body.
func unmarshalReplySlow(text string) (json.RawMessage, error) {
	var rb struct {
		Response json.RawMessage `json:"response"`
		Failure  *string         `json:"failure"`
	}
	if err := json.Unmarshal([]byte(text), &rb); err != nil {
		return nil, &driverError{kind: ErrDeliveryFailure, msg: "reply body is not JSON", err: err}
	}
	if rb.Failure != nil {
		var f struct {
			Class   string         `json:"class"`
			Module  string         `json:"module"`
			Message string         `json:"message"`
			Tb      []string       `json:"tb"`
			Args    []any          `json:"args"`
			Kwargs  map[string]any `json:"kwargs"`
		}
		if err := json.Unmarshal([]byte(*rb.Failure), &f); err != nil {
			return nil, &RemoteError{Class: "RemoteError", Message: *rb.Failure}
		}
		return nil, &RemoteError{Module: f.Module, Class: f.Class, Message: f.Message, Traceback: f.Tb, Args: f.Args, Kwargs: f.Kwargs}
	}
	if rb.Response == nil {
		rb.Response = json.RawMessage("null")
	}
	return rb.Response, nil
}
