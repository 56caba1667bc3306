package fakeutil

import (
	"errors"
	"fmt"
	"testing"
)

type recorder struct {
	fatal    string
	cleanups []func()
}

func (r *recorder) Helper()                           {}
func (r *recorder) Logf(string, ...any)               {}
func (r *recorder) Cleanup(f func())                  { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

type fake struct{ started, closed bool }

func (f *fake) Start() error { f.started = true; return nil }
func (f *fake) Close() error { f.closed = true; return nil }

func TestRunTStartsAndClosesWithTheTest(t *testing.T) {
	var r recorder
	f := RunT(&r, "fakex", func() (*fake, error) { return Run(func() (*fake, error) { return &fake{}, nil }) })
	if !f.started || r.fatal != "" || len(r.cleanups) != 1 {
		t.Fatalf("started=%v fatal=%q cleanups=%d", f.started, r.fatal, len(r.cleanups))
	}
	r.cleanups[0]()
	if !f.closed {
		t.Fatal("the cleanup did not close the fake")
	}
}

func TestRunTFailsTheTestOnStartError(t *testing.T) {
	var r recorder
	f := RunT(&r, "fakex", func() (*fake, error) { return nil, errors.New("port in use") })
	if f != nil || r.fatal != "fakex: port in use" || len(r.cleanups) != 0 {
		t.Fatalf("f=%v fatal=%q cleanups=%d", f, r.fatal, len(r.cleanups))
	}
	if _, err := Run(func() (*fake, error) { return nil, errors.New("bad options") }); err == nil {
		t.Fatal("Run hid the build error")
	}
}
