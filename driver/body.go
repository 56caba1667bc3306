package driver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	amqp "github.com/Azure/go-amqp"
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

// marshalRequest builds the body of an RPC request (calls and casts).
func marshalRequest(rpcCtx map[string]any, msg rpcMessage, callMonitor float64) (string, error) {
	if msg.Args == nil {
		msg.Args = map[string]any{}
	}
	if rpcCtx == nil {
		rpcCtx = map[string]any{}
	}
	// Build an ordered document so the keys come out as Python's do.
	body := orderedMap{{"request", orderedMap{{"method", msg.Method}, {"args", msg.Args}}}, {"context", rpcCtx}}
	req := body[0].v.(orderedMap)
	if msg.Namespace != "" {
		req = append(req, kv{"namespace", msg.Namespace})
	}
	if msg.Version != "" {
		req = append(req, kv{"version", msg.Version})
	}
	body[0].v = req
	if callMonitor > 0 {
		body = append(body, kv{"call_monitor_timeout", callMonitor})
	}
	return pyJSON(body)
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
