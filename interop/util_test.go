package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// collector gathers what Go handlers receive, for a test to wait on.
type collector[T any] struct {
	mu      sync.Mutex
	items   []T
	changed chan struct{}
}

func newCollector[T any]() *collector[T] { return &collector[T]{changed: make(chan struct{})} }

func (c *collector[T]) add(v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = append(c.items, v)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *collector[T]) all() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]T(nil), c.items...)
}

// waitFor waits until cond accepts the items collected so far and returns them.
func (c *collector[T]) waitFor(ctx context.Context, what string, cond func([]T) bool) ([]T, error) {
	for {
		c.mu.Lock()
		items := append([]T(nil), c.items...)
		ch := c.changed
		c.mu.Unlock()
		if cond(items) {
			return items, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return items, fmt.Errorf("waiting for %s (have %d items): %w", what, len(items), ctx.Err())
		}
	}
}

// count waits until match accepts n items and returns those.
func (c *collector[T]) count(ctx context.Context, what string, n int, match func(T) bool) ([]T, error) {
	var got []T
	_, err := c.waitFor(ctx, what, func(items []T) bool {
		got = got[:0]
		for _, it := range items {
			if match(it) {
				got = append(got, it)
			}
		}
		return len(got) >= n
	})
	return got, err
}

var uniq atomic.Int64

// tag returns a value unique in the test run, to recognise one message among others.
func tag(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, uniq.Add(1))
}

// normJSON turns v (Go values or JSON text) into what encoding/json decodes it to, so
// that values from either side compare with reflect.DeepEqual.
func normJSON(v any) (any, error) {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("not JSON: %w: %s", err, truncate(string(raw), 200))
	}
	return out, nil
}

// sameJSON checks that got (what one side received back) equals want (what the other
// side sent), and on a difference names the first field that differs, with both
// values, rather than printing megabytes.
func sameJSON(t *testing.T, want, got any, who string) {
	t.Helper()
	w, err := normJSON(want)
	if err != nil {
		t.Fatalf("%s: want: %v", who, err)
	}
	g, err := normJSON(got)
	if err != nil {
		t.Fatalf("%s: got: %v", who, err)
	}
	if path, dw, dg := firstDiff("$", w, g); path != "" {
		t.Fatalf("%s: values differ at %s:\n  want %s\n  got  %s", who, path, dw, dg)
	}
}

// firstDiff returns the path of the first difference between a and b (JSON values as
// encoding/json decodes them) and a description of each side there, or "" when equal.
func firstDiff(path string, a, b any) (string, string, string) {
	if reflect.DeepEqual(a, b) {
		return "", "", ""
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			x, inA := av[k]
			y, inB := bv[k]
			p := fmt.Sprintf("%s[%q]", path, k)
			if !inA {
				return p, "(absent)", describe(y)
			}
			if !inB {
				return p, describe(x), "(absent)"
			}
			if dp, dx, dy := firstDiff(p, x, y); dp != "" {
				return dp, dx, dy
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		for i := range min(len(av), len(bv)) {
			if dp, dx, dy := firstDiff(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i]); dp != "" {
				return dp, dx, dy
			}
		}
		return path, fmt.Sprintf("a list of %d", len(av)), fmt.Sprintf("a list of %d", len(bv))
	case string:
		bv, ok := b.(string)
		if !ok {
			break
		}
		ar, br := []rune(av), []rune(bv)
		i := 0
		for i < len(ar) && i < len(br) && ar[i] == br[i] {
			i++
		}
		lo := max(i-20, 0)
		return fmt.Sprintf("%s (character %d of %d / %d)", path, i, len(ar), len(br)),
			fmt.Sprintf("%q", string(ar[lo:min(i+20, len(ar))])), fmt.Sprintf("%q", string(br[lo:min(i+20, len(br))]))
	}
	return path, describe(a), describe(b)
}

func describe(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return fmt.Sprintf("%T %s", v, truncate(string(b), 200))
}

// Payloads the cases send both ways.

// nonASCII mixes scripts, astral characters (surrogate pairs in Python's JSON), JSON
// escapes, controls and characters Go's encoder escapes on its own (U+2028, U+2029).
const nonASCII = "héllo wörld ☃ 日本語 Ελληνικά русский עברית 😀🚀 \u00a0\u2028\u2029 " +
	"tab\t nl\n cr\r quote\" backslash\\ slash/ <b>&amp; nul\x00 del\x7f end"

func nonASCIIValue() map[string]any {
	return map[string]any{
		"text":  nonASCII,
		"clé":   "valeur",
		"键":     []any{"值", "😀", ""},
		"emoji": "👩‍👩‍👧‍👦",
	}
}

// nestedValue is a deep, mixed structure within what JSON keeps exactly between Go
// and Python (integers below 2^53).
func nestedValue() map[string]any {
	var deep any = map[string]any{"bottom": true}
	for i := range 30 {
		if i%2 == 0 {
			deep = map[string]any{"level": i, "child": deep, "siblings": []any{i, nil}}
		} else {
			deep = []any{deep, fmt.Sprint(i)}
		}
	}
	return map[string]any{
		"scalars": []any{0, 1, -1, 9007199254740991, -9007199254740991, 0.5, -2.25, 1e-7, 1.5e300, true, false, nil, ""},
		"empty":   map[string]any{"map": map[string]any{}, "list": []any{}, "string": ""},
		"deep":    deep,
		"matrix":  []any{[]any{1, 2, 3}, []any{[]any{4}, []any{[]any{5}}}},
		"keys":    map[string]any{"": "empty key", "with space": 1, "dotted.key": 2, "slash/key": 3},
	}
}

// largeValue is more than 1 MiB of JSON: a pseudo-random ASCII blob (so a frame
// spliced in the wrong place shows) and many small non-ASCII records.
func largeValue() map[string]any {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	blob := make([]byte, 1<<20+1<<18) // 1.25 MiB
	x := uint32(2463534242)
	for i := range blob {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		blob[i] = alphabet[x%uint32(len(alphabet))]
	}
	items := make([]any, 2000)
	for i := range items {
		items[i] = map[string]any{"i": i, "name": fmt.Sprintf("élément-%d-☃", i)}
	}
	return map[string]any{"blob": string(blob), "items": items}
}

func jsonSize(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

// errorText formats a Python error object for messages.
func errorText(e map[string]any) string {
	if e == nil {
		return "<none>"
	}
	return fmt.Sprintf("%v.%v: %v", e["module"], e["class"], truncate(strings.TrimSpace(fmt.Sprint(e["message"])), 300))
}
