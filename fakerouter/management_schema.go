package fakerouter

import (
	"bytes"
	_ "embed" // the management schema
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

//go:generate sh -c "PYTHONPATH=/opt/amqp1kit/qdrouterd-1.19.0/lib/qpid-dispatch/python /usr/bin/python3 management_schema_gen.py > management_schema.json"

// managementSchemaJSON is qdrouterd 1.19.0's management schema as its Python agent
// reads it (qdrouter.json through qpid_dispatch_internal.management.schema), written
// by management_schema_gen.py: what GET-TYPES, GET-ATTRIBUTES, GET-OPERATIONS and
// GET-SCHEMA answer, and the attribute defaults of the agent's own entities.
//
//go:embed management_schema.json
var managementSchemaJSON []byte

// schemaType is one entity type of the schema.
type schemaType struct {
	name       string   // long: org.apache.qpid.dispatch.listener
	short      string   // listener
	bases      []string // all bases, long names
	operations []string
	attributes []schemaAttr
}

type schemaAttr struct {
	name     string
	typ      string
	defValue any // Python default: nil, bool, int, string
}

// isA reports whether t is other or extends it.
func (t *schemaType) isA(other *schemaType) bool {
	if t == other {
		return true
	}
	for _, b := range t.bases {
		if b == other.name {
			return true
		}
	}
	return false
}

func (t *schemaType) attributeNames() []string {
	out := make([]string, len(t.attributes))
	for i, a := range t.attributes {
		out[i] = a.name
	}
	return out
}

// mgmtSchema is the decoded schema.
type mgmtSchema struct {
	prefix   string
	types    []*schemaType // in the schema's order
	byName   map[string]*schemaType
	allAttrs []string
	dump     any // GET-SCHEMA's body: ordered maps (*wire.Map), lists, Python values
}

var (
	schemaOnce sync.Once
	schemaVal  *mgmtSchema
)

// theSchema decodes the embedded schema once.
func theSchema() *mgmtSchema {
	schemaOnce.Do(func() {
		s, err := decodeSchema(managementSchemaJSON)
		if err != nil {
			panic("fakerouter: management_schema.json: " + err.Error())
		}
		schemaVal = s
	})
	return schemaVal
}

func decodeSchema(raw []byte) (*mgmtSchema, error) {
	v, err := decodeOrderedJSON(raw)
	if err != nil {
		return nil, err
	}
	top, ok := v.(*wire.Map)
	if !ok {
		return nil, fmt.Errorf("not an object")
	}
	s := &mgmtSchema{byName: map[string]*schemaType{}}
	get := func(m *wire.Map, k string) any { x, _ := m.Get(k); return x }
	s.prefix, _ = get(top, "prefix").(string)
	s.dump = get(top, "schema")
	for _, a := range asList(get(top, "allAttributes")) {
		s.allAttrs = append(s.allAttrs, a.(string))
	}
	for _, tv := range asList(get(top, "types")) {
		tm := tv.(*wire.Map)
		t := &schemaType{}
		t.name, _ = get(tm, "name").(string)
		t.short, _ = get(tm, "short").(string)
		for _, b := range asList(get(tm, "bases")) {
			t.bases = append(t.bases, b.(string))
		}
		for _, o := range asList(get(tm, "operations")) {
			t.operations = append(t.operations, o.(string))
		}
		for _, av := range asList(get(tm, "attributes")) {
			am := av.(*wire.Map)
			a := schemaAttr{defValue: get(am, "default")}
			a.name, _ = get(am, "name").(string)
			a.typ, _ = get(am, "type").(string)
			t.attributes = append(t.attributes, a)
		}
		s.types = append(s.types, t)
		s.byName[t.name] = t
	}
	if len(s.types) == 0 || s.prefix == "" {
		return nil, fmt.Errorf("no entity types")
	}
	return s, nil
}

func asList(v any) []any { l, _ := v.([]any); return l }

// lookup resolves a type name as the Python agent does: as given, else with the
// prefix (so "router.address" works and "address" does not). nil when unknown.
func (s *mgmtSchema) lookup(name string) *schemaType {
	if t := s.byName[name]; t != nil {
		return t
	}
	if name == "" {
		return nil
	}
	return s.byName[s.longName(name)]
}

func (s *mgmtSchema) longName(name string) string {
	if name == "" || strings.HasPrefix(name, s.prefix+".") {
		return name
	}
	return s.prefix + "." + name
}

// decodeOrderedJSON decodes JSON keeping the order of object members (as *wire.Map)
// and Python's view of numbers (int for integers).
func decodeOrderedJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := readJSONValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("trailing data")
	}
	return v, nil
}

func readJSONValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := &wire.Map{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := readJSONValue(dec)
				if err != nil {
					return nil, err
				}
				m.Entries = append(m.Entries, wire.MapEntry{Key: kt.(string), Value: v})
			}
			_, err := dec.Token()
			return m, err
		case '[':
			l := []any{}
			for dec.More() {
				v, err := readJSONValue(dec)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token()
			return l, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return int(i), nil
		}
		f, err := t.Float64()
		return f, err
	default:
		return t, nil // string, bool, nil
	}
}

// pyJSON writes v as Python's json.dumps does (ensure_ascii, ", " and ": " separators,
// or "," and newlines when indent is set): GET-JSON-SCHEMA's answer.
func pyJSON(v any, indent int, indented bool) string {
	var sb strings.Builder
	writePyJSON(&sb, v, indent, indented, 0)
	return sb.String()
}

func writePyJSON(sb *strings.Builder, v any, indent int, indented bool, level int) {
	nl := func(l int) {
		if indented {
			sb.WriteByte('\n')
			sb.WriteString(strings.Repeat(" ", indent*l))
		}
	}
	sep := ", "
	if indented {
		sep = ","
	}
	switch v := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		if v {
			sb.WriteString("true")
		} else {
			sb.WriteString("false")
		}
	case int:
		fmt.Fprintf(sb, "%d", v)
	case float64:
		switch {
		case math.IsNaN(v):
			sb.WriteString("NaN")
		case math.IsInf(v, 1):
			sb.WriteString("Infinity")
		case math.IsInf(v, -1):
			sb.WriteString("-Infinity")
		default:
			sb.WriteString(pyFloat(v))
		}
	case string:
		writePyJSONString(sb, v)
	case []any:
		if len(v) == 0 {
			sb.WriteString("[]")
			return
		}
		sb.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				sb.WriteString(sep)
			}
			nl(level + 1)
			writePyJSON(sb, e, indent, indented, level+1)
		}
		nl(level)
		sb.WriteByte(']')
	case *wire.Map:
		if v.Len() == 0 {
			sb.WriteString("{}")
			return
		}
		sb.WriteByte('{')
		for i, e := range v.Entries {
			if i > 0 {
				sb.WriteString(sep)
			}
			nl(level + 1)
			k, _ := e.Key.(string)
			writePyJSONString(sb, k)
			sb.WriteString(": ")
			writePyJSON(sb, e.Value, indent, indented, level+1)
		}
		nl(level)
		sb.WriteByte('}')
	default:
		writePyJSONString(sb, fmt.Sprint(v))
	}
}

func writePyJSONString(sb *strings.Builder, s string) {
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			sb.WriteString(`\"`)
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\b':
			sb.WriteString(`\b`)
		case r == '\f':
			sb.WriteString(`\f`)
		case r < 0x20 || (r > 0x7f && r <= 0xffff):
			fmt.Fprintf(sb, `\u%04x`, r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(sb, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
}
