package daemon

import (
	"context"
	"fmt"
	"sync"
)

// Group runs a daemon's long-lived goroutines under one context: the
// first that fails cancels the others, and Wait returns its error.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// NewGroup returns a group whose context ends with ctx or at the first
// failure.
func NewGroup(ctx context.Context) *Group {
	g := &Group{}
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

// Context is the group's context.
func (g *Group) Context() context.Context { return g.ctx }

// Go runs f in the group; an error it returns while the group is running
// stops the group, prefixed with name unless name is "".
func (g *Group) Go(name string, f func(context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(g.ctx); err != nil && g.ctx.Err() == nil {
			if name != "" {
				err = fmt.Errorf("%s: %w", name, err)
			}
			g.once.Do(func() { g.err = err })
			g.cancel()
		}
	}()
}

// Stop cancels the group's context.
func (g *Group) Stop() { g.cancel() }

// Wait waits for every goroutine and returns the first failure.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
