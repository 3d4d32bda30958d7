package fs

import (
	"context"
	"sync"
)

// background runs the filesystem's goroutines (delta poll, upload retries,
// read-ahead, kernel notifications) on one context that unmount cancels,
// and waits for them.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	stopped bool // GUARDED_BY(mu)
	wg      sync.WaitGroup
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// Go runs fn on its own goroutine unless stop was called; it reports
// whether fn was started.
func (b *background) Go(fn func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(b.ctx)
	}()
	return true
}

// stop cancels the context and waits for every goroutine to return.
func (b *background) stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}
