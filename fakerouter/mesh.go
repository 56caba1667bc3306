package fakerouter

import (
	"errors"
	"fmt"

	"github.com/amqp1kit/amqp1kit/internal/fakeutil"
)

// Mesh is several fake routers connected as one network: a message that enters at
// one router reaches consumers on any of them, multicast reaches the consumers of all,
// and closest distribution prefers consumers on the router where the message entered.
// The routers share one routing table in-process, so addresses propagate at once
// (qdrouterd propagates them asynchronously; tests of a real mesh must wait for that).
type Mesh struct {
	routers []*Router
}

// NewMesh starts n routers on free loopback ports (opts.Addr must be unset or end in
// ":0"), named opts.ID-1 … opts.ID-n.
func NewMesh(n int, opts *Options) (*Mesh, error) {
	if n < 1 {
		return nil, fmt.Errorf("fakerouter: a mesh needs at least one router, not %d", n)
	}
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	c, err := newCore(&o)
	if err != nil {
		return nil, err
	}
	m := &Mesh{}
	for i := range n {
		ro := o
		ro.ID = fmt.Sprintf("%s-%d", o.ID, i+1)
		if n > 1 && opts != nil && opts.Addr != "" {
			return nil, errors.New("fakerouter: a mesh of several routers listens on free ports; leave Addr unset")
		}
		r := newRouter(ro, c)
		if err := r.Start(); err != nil {
			m.Close()
			return nil, err
		}
		m.routers = append(m.routers, r)
	}
	return m, nil
}

// RunMeshT starts a mesh of n routers for a test and closes it when the test ends.
func RunMeshT(t Tester, n int, opts *Options) *Mesh {
	t.Helper()
	return fakeutil.RunT(t, "fakerouter", func() (*Mesh, error) { return NewMesh(n, opts) })
}

// Routers returns the mesh's routers.
func (m *Mesh) Routers() []*Router { return m.routers }

// Router returns the i-th router (from 0).
func (m *Mesh) Router(i int) *Router { return m.routers[i] }

// Close closes every router of the mesh.
func (m *Mesh) Close() error {
	var errs []error
	for _, r := range m.routers {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
