// Package specgen generates spec_gen.go of package wire from the AMQP 1.0
// specification's XML (Debian package amqp-specs, /usr/share/amqp/specs/1-0): one Go
// struct with an encoder and a decoder per composite type (performatives, SASL frames,
// delivery states and outcomes, termini, error, header and properties sections,
// lifetime policies, transaction types), the numeric and symbolic descriptors, and a
// constant per choice of every restricted type (settle modes, roles, error conditions,
// SASL codes, ...). The command ../../gen runs it; gen_test.go checks that the
// committed file is what it produces.
package specgen

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

type specFile struct {
	Sections []struct {
		Name  string     `xml:"name,attr"`
		Types []specType `xml:"type"`
	} `xml:"section"`
}

type specType struct {
	Name       string `xml:"name,attr"`
	Class      string `xml:"class,attr"`
	Source     string `xml:"source,attr"`
	Provides   string `xml:"provides,attr"`
	Descriptor *struct {
		Name string `xml:"name,attr"`
		Code string `xml:"code,attr"`
	} `xml:"descriptor"`
	Fields  []specField `xml:"field"`
	Choices []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	} `xml:"choice"`
	file string
}

type specField struct {
	Name      string `xml:"name,attr"`
	Type      string `xml:"type,attr"`
	Mandatory bool   `xml:"mandatory,attr"`
	Multiple  bool   `xml:"multiple,attr"`
	Default   string `xml:"default,attr"`
	Requires  string `xml:"requires,attr"`
}

// DefaultSpecDir is where Debian's amqp-specs package installs the AMQP 1.0 XML.
const DefaultSpecDir = "/usr/share/amqp/specs/1-0"

// Files are the XML files of DefaultSpecDir that Generate reads.
var Files = []string{"transport.bare.xml", "messaging.bare.xml", "security.bare.xml", "transactions.bare.xml"}

// Generate returns the formatted Go source generated from the XML in dir.
func Generate(dir string) ([]byte, error) {
	var types []specType
	for _, f := range Files {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		var sf specFile
		if err := xml.Unmarshal(raw, &sf); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, s := range sf.Sections {
			for _, t := range s.Types {
				t.file = f
				types = append(types, t)
			}
		}
	}
	g := &gen{byName: map[string]*specType{}}
	for i := range types {
		g.byName[types[i].Name] = &types[i]
	}
	g.types = types
	return g.run()
}

type gen struct {
	types  []specType
	byName map[string]*specType
	buf    bytes.Buffer
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.buf, format+"\n", args...) }

var initialisms = map[string]string{"id": "ID", "sasl": "SASL", "ttl": "TTL", "amqp": "AMQP", "ok": "OK"}

func camel(s string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == ':' || r == '.' }) {
		if up, ok := initialisms[w]; ok {
			b.WriteString(up)
			continue
		}
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// enumTypes are restricted types with choices that become named Go types.
var enumGoType = map[string]string{
	"role":                   "Role",
	"sender-settle-mode":     "SenderSettleMode",
	"receiver-settle-mode":   "ReceiverSettleMode",
	"terminus-durability":    "TerminusDurability",
	"terminus-expiry-policy": "TerminusExpiryPolicy",
	"sasl-code":              "SASLCode",
	"std-dist-mode":          "StdDistMode",
	"txn-capability":         "TxnCapability",
}

// zeroIsNull lists optional numeric fields whose null means the same as zero (no
// timeout, no limit, no ttl, never delivered): they are plain values, encoded as null
// when zero, rather than pointers.
var zeroIsNull = map[string]bool{
	"open.idle-time-out":      true,
	"attach.max-message-size": true,
	"header.ttl":              true,
	"header.delivery-count":   true,
}

var errorTypes = []string{"amqp-error", "connection-error", "session-error", "link-error", "transaction-error"}

// base resolves a restricted type to its primitive source.
func (g *gen) base(name string) string {
	for range 10 {
		t, ok := g.byName[name]
		if !ok || t.Class != "restricted" {
			return name
		}
		if _, isEnum := enumGoType[name]; isEnum {
			return name
		}
		switch name {
		case "fields", "annotations", "node-properties", "filter-set":
			return name
		}
		name = t.Source
	}
	return name
}

// fieldKind describes how one field is held, encoded and decoded.
type fieldKind struct {
	goType  string
	pointer bool   // optional numeric held as a pointer (nil = null)
	isNull  string // Go expression, with %s for the field, true when the field is null
	encode  string // statement appending non-null %s to b (may set err)
	decode  string // statement(s) reading into %s; may use v, null, err
	dflt    string // Go expression of the default, "" if none
}

func (g *gen) kind(t *specType, f specField) fieldKind {
	typ := f.Type
	if typ == "*" {
		switch f.Requires {
		case "source":
			return fieldKind{goType: "*Source", isNull: "%s == nil", encode: "b, err = %s.AppendTo(b)",
				decode: "%s, err = decodeComposite[*Source](d, DescriptorSource)"}
		case "target":
			return fieldKind{goType: "*Target", isNull: "%s == nil", encode: "b, err = %s.AppendTo(b)",
				decode: "special"}
		case "delivery-state":
			return fieldKind{goType: "DeliveryState", isNull: "%s == nil", encode: "b, err = %s.AppendTo(b)",
				decode: "%s, err = decodeDeliveryState(d)"}
		case "outcome":
			return fieldKind{goType: "Outcome", isNull: "%s == nil", encode: "b, err = %s.AppendTo(b)",
				decode: "%s, err = decodeOutcome(d)"}
		case "address":
			return fieldKind{goType: "string", isNull: `%s == ""`, encode: "b, err = appendUTF8(b, %s)",
				decode: "%s, _, err = d.ReadAddress()"}
		case "message-id":
			return fieldKind{goType: "any", isNull: "%s == nil", encode: "b, err = appendMessageID(b, %s)",
				decode: "%s, err = readMessageID(d)"}
		case "txn-id":
			return fieldKind{goType: "[]byte", isNull: "%s == nil", encode: "b = AppendBinary(b, %s)",
				decode: "%s, null, err = d.ReadBinary()"}
		case "global-tx-id":
			return fieldKind{goType: "any", isNull: "%s == nil", encode: "b, err = AppendAny(b, %s)",
				decode: "%s, err = d.ReadAny()"}
		}
		panic("unhandled requires " + f.Requires)
	}
	b := g.base(typ)
	if f.Multiple {
		if b != "symbol" && b != "ietf-language-tag" && typ != "symbol" {
			panic("multiple non-symbol field " + f.Name)
		}
		gt := "[]Symbol"
		if f.Requires == "txn-capability" {
			gt = "[]Symbol"
		}
		enc := "b = AppendSymbolArray(b, %s)"
		if f.Mandatory {
			enc = "b = AppendSymbolArray(b, nonNilSymbols(%s))"
		}
		return fieldKind{goType: gt, isNull: "%s == nil", encode: enc,
			decode: "%s, err = d.ReadSymbols()"}
	}
	if en, ok := enumGoType[b]; ok {
		src := g.byName[b].Source
		k := fieldKind{goType: en}
		switch src {
		case "boolean":
			k.encode = "b = AppendBool(b, bool(%s))"
			k.decode = "{ var tmp bool; tmp, null, err = d.ReadBool(); %s = " + en + "(tmp) }"
		case "ubyte":
			k.encode = "b = AppendUbyte(b, uint8(%s))"
			k.decode = "{ var tmp uint8; tmp, null, err = d.ReadUbyte(); %s = " + en + "(tmp) }"
		case "uint":
			k.encode = "b = AppendUint(b, uint32(%s))"
			k.decode = "{ var tmp uint32; tmp, null, err = d.ReadUint(); %s = " + en + "(tmp) }"
		case "symbol":
			k.encode = "b = AppendSymbol(b, Symbol(%s))"
			k.decode = "{ var tmp Symbol; tmp, null, err = d.ReadSymbol(); %s = " + en + "(tmp) }"
		default:
			panic("enum source " + src)
		}
		if f.Default != "" {
			k.dflt = en + camel(f.Default)
			k.isNull = "%s == " + k.dflt
		} else if f.Mandatory {
			k.isNull = "false"
		} else {
			// optional enum without default: pointer
			k.goType = "*" + en
			k.pointer = true
			k.isNull = "%s == nil"
			k.encode = strings.Replace(k.encode, "(%s)", "(*%s)", 1)
			k.decode = strings.Replace(k.decode, "%s = "+en+"(tmp)", "if !null { y := "+en+"(tmp); %s = &y }", 1)
		}
		return k
	}
	if f.Requires == "error-condition" {
		return fieldKind{goType: "ErrCond", isNull: `%s == ""`, encode: "b = AppendSymbol(b, Symbol(%s))",
			decode: "{ var tmp Symbol; tmp, null, err = d.ReadSymbol(); %s = ErrCond(tmp) }"}
	}
	num := func(goT, app, rd string) fieldKind {
		k := fieldKind{goType: goT, encode: "b = " + app + "(b, %s)", decode: "%s, null, err = d." + rd + "()"}
		switch {
		case f.Default != "":
			k.dflt = f.Default
			k.isNull = "%s == " + f.Default
		case zeroIsNull[t.Name+"."+f.Name]:
			k.isNull = "%s == 0"
		case f.Mandatory:
			k.isNull = "false"
		default:
			k.goType = "*" + goT
			k.pointer = true
			k.isNull = "%s == nil"
			k.encode = "b = " + app + "(b, *%s)"
			k.decode = "{ var tmp " + goT + "; tmp, null, err = d." + rd + "(); if !null { %s = &tmp } }"
		}
		return k
	}
	switch b {
	case "uint":
		return num("uint32", "AppendUint", "ReadUint")
	case "ulong":
		return num("uint64", "AppendUlong", "ReadUlong")
	case "ushort":
		return num("uint16", "AppendUshort", "ReadUshort")
	case "ubyte":
		return num("uint8", "AppendUbyte", "ReadUbyte")
	case "boolean":
		k := fieldKind{goType: "bool", encode: "b = AppendBool(b, %s)", decode: "%s, null, err = d.ReadBool()"}
		switch {
		case f.Default == "true":
			k.dflt, k.isNull = "true", "%s"
		case f.Mandatory:
			k.isNull = "false"
		default:
			k.isNull = "!%s"
		}
		return k
	case "string":
		return fieldKind{goType: "string", isNull: `%s == ""`, encode: "b, err = appendUTF8(b, %s)",
			decode: "%s, null, err = d.ReadString()"}
	case "symbol", "ietf-language-tag":
		return fieldKind{goType: "Symbol", isNull: `%s == ""`, encode: "b = AppendSymbol(b, %s)",
			decode: "%s, null, err = d.ReadSymbol()"}
	case "binary":
		return fieldKind{goType: "[]byte", isNull: "%s == nil", encode: "b = AppendBinary(b, %s)",
			decode: "%s, null, err = d.ReadBinary()"}
	case "timestamp":
		return fieldKind{goType: "time.Time", isNull: "%s.IsZero()", encode: "b = AppendTimestamp(b, %s)",
			decode: "%s, null, err = d.ReadTimestamp()"}
	case "fields", "node-properties", "filter-set":
		return fieldKind{goType: "Fields", isNull: "%s == nil", encode: "b, err = appendFields(b, %s, 1)",
			decode: "%s, err = d.ReadFields()"}
	case "annotations":
		return fieldKind{goType: "Annotations", isNull: "%s == nil", encode: "b, err = appendAnnotations(b, %s, 1)",
			decode: "%s, err = d.ReadAnnotations()"}
	case "map":
		return fieldKind{goType: "*Map", isNull: "%s == nil", encode: "b, err = AppendAny(b, %s)",
			decode: "%s, err = readMap(d)"}
	case "error":
		return fieldKind{goType: "*Error", isNull: "%s == nil", encode: "b, err = %s.AppendTo(b)",
			decode: "%s, err = decodeComposite[*Error](d, DescriptorError)"}
	}
	panic(fmt.Sprintf("unhandled field %s.%s of type %s (%s)", t.Name, f.Name, f.Type, b))
}

// negate returns the Go expression that is true when expr is false, without double
// negations: "!x.A" gives "x.A", "x.A == nil" gives "x.A != nil".
func negate(expr string) string {
	switch {
	case strings.HasPrefix(expr, "!") && !strings.ContainsAny(expr, " ()"):
		return expr[1:]
	case strings.Count(expr, " == ") == 1 && !strings.ContainsAny(expr, "()&|"):
		return strings.Replace(expr, " == ", " != ", 1)
	case !strings.ContainsAny(expr, " !"):
		return "!" + expr
	}
	return "!(" + expr + ")"
}

func parseCode(s string) uint64 {
	parts := strings.Split(s, ":")
	hi, _ := strconv.ParseUint(strings.TrimPrefix(parts[0], "0x"), 16, 32)
	lo, _ := strconv.ParseUint(strings.TrimPrefix(parts[1], "0x"), 16, 32)
	return hi<<32 | lo
}

func (g *gen) run() ([]byte, error) {
	g.p("// Code generated by go run ./gen from the AMQP 1.0 specification XML; DO NOT EDIT.")
	g.p("")
	g.p("package wire")
	g.p("")
	g.p(`import "time"`)
	g.p("")
	g.p("var _ time.Time")
	g.emitEnums()
	g.emitErrorConditions()
	var composites []*specType
	var described []*specType
	for i := range g.types {
		t := &g.types[i]
		if t.Descriptor == nil {
			continue
		}
		if t.Class == "composite" {
			composites = append(composites, t)
		} else {
			described = append(described, t)
		}
	}
	// descriptors
	g.p("// Numeric descriptors of the described types of the specification.")
	g.p("const (")
	for _, t := range append(append([]*specType{}, composites...), described...) {
		g.p("\t// Descriptor%s is %s.", camel(t.Name), t.Descriptor.Name)
		g.p("\tDescriptor%s uint64 = 0x%x", camel(t.Name), parseCode(t.Descriptor.Code))
	}
	g.p(")")
	g.p("")
	g.p("// codeBySymbol maps symbolic descriptors to numeric ones.")
	g.p("var codeBySymbol = map[Symbol]uint64{")
	for _, t := range append(append([]*specType{}, composites...), described...) {
		g.p("\t%q: Descriptor%s,", t.Descriptor.Name, camel(t.Name))
	}
	g.p("}")
	g.p("")
	g.p("// compositeByCode builds an empty value of each composite type, by descriptor.")
	g.p("var compositeByCode = map[uint64]func() composite{")
	for _, t := range composites {
		g.p("\tDescriptor%s: func() composite { return new(%s) },", camel(t.Name), camel(t.Name))
	}
	g.p("}")
	g.p("")
	g.p("// DescriptorName returns the symbolic name of a numeric descriptor, or \"\".")
	g.p("func DescriptorName(code uint64) string {")
	g.p("\tswitch code {")
	for _, t := range append(append([]*specType{}, composites...), described...) {
		g.p("\tcase Descriptor%s:\n\t\treturn %q", camel(t.Name), t.Descriptor.Name)
	}
	g.p("\t}")
	g.p("\treturn \"\"")
	g.p("}")
	for _, t := range composites {
		g.emitComposite(t)
	}
	src, err := format.Source(g.buf.Bytes())
	if err != nil {
		return g.buf.Bytes(), fmt.Errorf("gofmt generated code: %w", err)
	}
	return src, nil
}

func (g *gen) emitEnums() {
	names := make([]string, 0, len(enumGoType))
	for k := range enumGoType {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		t := g.byName[n]
		en := enumGoType[n]
		var under string
		switch t.Source {
		case "boolean":
			under = "bool"
		case "ubyte":
			under = "uint8"
		case "uint":
			under = "uint32"
		case "symbol":
			under = "Symbol"
		}
		g.p("")
		g.p("// %s is the AMQP restricted type %q (%s, from %s).", en, n, t.Source, t.file)
		g.p("type %s %s", en, under)
		g.p("")
		g.p("// Choices of %s.", en)
		g.p("const (")
		for _, c := range t.Choices {
			val := c.Value
			if under == "Symbol" {
				val = strconv.Quote(val)
			}
			g.p("\t%s%s %s = %s", en, camel(c.Name), en, val)
		}
		g.p(")")
		if under != "Symbol" {
			g.p("")
			g.p("// String returns the specification's name of the choice.")
			g.p("func (v %s) String() string {", en)
			g.p("\tswitch v {")
			for _, c := range t.Choices {
				g.p("\tcase %s%s:\n\t\treturn %q", en, camel(c.Name), c.Name)
			}
			g.p("\t}")
			if under == "bool" {
				g.p("\treturn \"?\"")
			} else {
				g.p("\treturn \"%s(\" + itoa(uint64(v)) + \")\"", n)
			}
			g.p("}")
		}
	}
}

func (g *gen) emitErrorConditions() {
	seen := map[string]int{}
	for _, n := range errorTypes {
		for _, c := range g.byName[n].Choices {
			seen[c.Name]++
		}
	}
	g.p("")
	g.p("// ErrCond is an AMQP error condition: the symbols of amqp-error, connection-error,")
	g.p("// session-error, link-error and transaction-error, or any other symbol a peer uses.")
	g.p("type ErrCond Symbol")
	for _, n := range errorTypes {
		t := g.byName[n]
		g.p("")
		g.p("// Conditions of %s (%s).", n, t.file)
		g.p("const (")
		for _, c := range t.Choices {
			name := camel(c.Name)
			if seen[c.Name] > 1 {
				name = camel(strings.TrimSuffix(n, "-error")) + name
			}
			g.p("\tErrCond%s ErrCond = %q", name, c.Value)
		}
		g.p(")")
	}
}

func (g *gen) emitComposite(t *specType) {
	name := camel(t.Name)
	code := parseCode(t.Descriptor.Code)
	provides := strings.Split(strings.ReplaceAll(t.Provides, " ", ""), ",")
	g.p("")
	g.p("// %s is the AMQP composite type %q (%s, 0x%x), from %s.", name, t.Name, t.Descriptor.Name, code, t.file)
	g.p("type %s struct {", name)
	kinds := make([]fieldKind, len(t.Fields))
	for i, f := range t.Fields {
		kinds[i] = g.kind(t, f)
		var notes []string
		if f.Mandatory {
			notes = append(notes, "mandatory")
		}
		if f.Default != "" {
			notes = append(notes, "default "+f.Default)
		}
		if kinds[i].pointer {
			notes = append(notes, "nil when absent")
		}
		note := ""
		if len(notes) > 0 {
			note = " (" + strings.Join(notes, "; ") + ")"
		}
		g.p("\t// %s is the field %q%s.", camel(f.Name), f.Name, note)
		g.p("\t%s %s", camel(f.Name), kinds[i].goType)
	}
	if t.Name == "attach" {
		g.p("\t// Coordinator is set instead of Target when the target is a transaction coordinator.")
		g.p("\tCoordinator *Coordinator")
	}
	g.p("}")
	g.p("")
	g.p("// Descriptor returns Descriptor%s.", name)
	g.p("func (x *%s) Descriptor() uint64 { return Descriptor%s }", name, name)
	for _, pr := range provides {
		switch pr {
		case "frame":
			g.p("func (x *%s) performative() {}", name)
		case "sasl-frame":
			g.p("func (x *%s) saslFrame() {}", name)
		case "delivery-state":
			g.p("func (x *%s) deliveryState() {}", name)
		case "outcome":
			g.p("func (x *%s) outcome() {}", name)
		}
	}
	// encoder
	g.p("")
	g.p("// AppendTo appends the described encoding of x, omitting trailing null fields.")
	g.p("func (x *%s) AppendTo(b []byte) ([]byte, error) {", name)
	if len(t.Fields) == 0 && t.Name != "attach" {
		g.p("\treturn append(AppendDescriptor(b, Descriptor%s), TypeList0), nil", name)
		g.p("}")
	} else {
		// err is declared only where a field's encoding can fail; last starts at the
		// last field that is always encoded, and only the optional fields after it
		// can raise it.
		needErr := t.Name == "attach"
		always := -1
		for i, f := range t.Fields {
			if strings.Contains(kinds[i].encode, "err =") {
				needErr = true
			}
			if kinds[i].isNull == "false" || f.Mandatory {
				always = i
			}
		}
		if needErr {
			g.p("\tvar err error")
		}
		g.p("\tb = AppendDescriptor(b, Descriptor%s)", name)
		g.p("\tlast := %d", always)
		for i, f := range t.Fields {
			if i <= always {
				continue
			}
			k := kinds[i]
			if t.Name == "attach" && f.Name == "target" {
				g.p("\tif x.Target != nil || x.Coordinator != nil { last = %d }", i)
				continue
			}
			g.p("\tif %s { last = %d }", negate(fmt.Sprintf(k.isNull, "x."+camel(f.Name))), i)
		}
		g.p("\tb, off := ListStart(b)")
		for i, f := range t.Fields {
			k := kinds[i]
			fld := "x." + camel(f.Name)
			g.p("\tif last >= %d {", i)
			if t.Name == "attach" && f.Name == "target" {
				g.p("\t\tswitch { case x.Coordinator != nil: b, err = x.Coordinator.AppendTo(b); case x.Target != nil: b, err = x.Target.AppendTo(b); default: b = AppendNull(b) }")
				g.p("\t\tif err != nil { return b, err }")
				g.p("\t}")
				continue
			}
			if k.isNull == "false" || f.Mandatory {
				// A mandatory field is always encoded, even when its Go value is the
				// zero value ("" is a string, an empty binary is a binary): encoding it
				// as null would make a frame that the decoder (and any peer) refuses.
				g.p("\t\t%s", fmt.Sprintf(k.encode, fld))
			} else {
				g.p("\t\tif %s { b = AppendNull(b) } else { %s }", fmt.Sprintf(k.isNull, fld), fmt.Sprintf(k.encode, fld))
			}
			if strings.Contains(k.encode, "err =") {
				g.p("\t\tif err != nil { return b, err }")
			}
			g.p("\t}")
		}
		g.p("\treturn ListEnd(b, off, last+1), nil")
		g.p("}")
	}
	// decoder
	g.p("")
	g.p("// decodeValue reads the list of fields that follows the descriptor.")
	g.p("func (x *%s) decodeValue(d *Decoder) error {", name)
	g.p("\tn, end, err := d.ReadListHeader()")
	g.p("\tif err != nil { return err }")
	g.p("\t*x = %s{}", name)
	for i, f := range t.Fields {
		if kinds[i].dflt != "" {
			g.p("\tx.%s = %s", camel(f.Name), kinds[i].dflt)
		}
	}
	// null is declared only where a decoded field's nullness is read.
	needNull := false
	for i, f := range t.Fields {
		k := kinds[i]
		if f.Mandatory || k.dflt != "" || (k.decode != "special" && strings.Count(k.decode, "null") > 1) {
			needNull = true
		}
	}
	if needNull {
		g.p("\tvar null bool")
	}
	for i, f := range t.Fields {
		k := kinds[i]
		fld := "x." + camel(f.Name)
		g.p("\tif n > %d {", i)
		if k.decode == "special" {
			g.p("\t\tx.Target, x.Coordinator, err = decodeTarget(d)")
			if f.Mandatory {
				g.p("\t\tnull = x.Target == nil && x.Coordinator == nil")
			}
		} else if k.dflt != "" {
			// keep the default when null
			g.p("\t\tsaved := %s", fld)
			g.p("\t\t%s", fmt.Sprintf(k.decode, fld))
			g.p("\t\tif null { %s = saved }", fld)
		} else {
			dec := k.decode
			if !f.Mandatory && strings.Count(dec, "null") == 1 {
				// Nothing reads whether this field was null: discard it.
				dec = strings.Replace(dec, "null,", "_,", 1)
			}
			g.p("\t\t%s", fmt.Sprintf(dec, fld))
			if !strings.Contains(k.decode, "null,") && f.Mandatory {
				g.p("\t\tnull = %s", fmt.Sprintf(k.isNull, fld))
			}
		}
		g.p("\t\tif err != nil { return fieldError(%q, %q, err) }", t.Name, f.Name)
		if f.Mandatory {
			g.p("\t\tif null { return missingField(%q, %q) }", t.Name, f.Name)
		}
		if f.Mandatory {
			g.p("\t} else {")
			g.p("\t\treturn missingField(%q, %q)", t.Name, f.Name)
		}
		g.p("\t}")
	}
	g.p("\treturn d.skipRest(n, %d, end)", len(t.Fields))
	g.p("}")
	g.p("")
	g.p("// Unmarshal decodes x from b, which must start with its descriptor, and returns the")
	g.p("// number of bytes read.")
	g.p("func (x *%s) Unmarshal(b []byte) (int, error) {", name)
	g.p("\td := Decoder{buf: b}")
	g.p("\tcode, err := d.ReadDescriptor()")
	g.p("\tif err != nil { return 0, err }")
	g.p("\tif code != Descriptor%s { return 0, wrongDescriptor(%q, code) }", name, t.Name)
	g.p("\tif err := x.decodeValue(&d); err != nil { return 0, err }")
	g.p("\treturn d.off, nil")
	g.p("}")
}
