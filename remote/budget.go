package remote

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The service meters an application in resource units per minute and, from
// 80% of that budget on, says so in every answer: RateLimit-Limit,
// RateLimit-Remaining and RateLimit-Reset (seconds until the window ends)
// (docs/graph-contract.md §7). Callers that can pace themselves (the start
// of server-side copies) read it with Budget, so that a burst slows down
// before the service throttles it rather than after.

// Budget is what the service last said of the application's request budget.
type Budget struct {
	// Limit and Remaining are resource units of the current window.
	Limit, Remaining int
	// Reset is when the window ends and the budget is whole again.
	Reset time.Time
}

// budgetNote holds the last Budget seen. Its own lock: it is written on
// every answer that carries the headers.
type budgetNote struct {
	mu   sync.Mutex
	last Budget
	seen bool
}

// noteBudget records the RateLimit headers of an answer, if it has them.
func (c *Client) noteBudget(h http.Header) {
	rem, err1 := strconv.Atoi(h.Get("RateLimit-Remaining"))
	reset, err2 := strconv.Atoi(h.Get("RateLimit-Reset"))
	if err1 != nil || err2 != nil || rem < 0 || reset < 0 {
		return
	}
	limit, _ := strconv.Atoi(h.Get("RateLimit-Limit"))
	b := Budget{Limit: limit, Remaining: rem, Reset: c.now().Add(time.Duration(reset) * time.Second)}
	c.budget.mu.Lock()
	c.budget.last, c.budget.seen = b, true
	c.budget.mu.Unlock()
}

// Budget returns what the service last said of the application's budget,
// and false when it has said nothing for the current window (it speaks
// only from 80% on, so false means "plenty left" as far as it is known).
func (c *Client) Budget() (Budget, bool) {
	c.budget.mu.Lock()
	defer c.budget.mu.Unlock()
	if !c.budget.seen || !c.now().Before(c.budget.last.Reset) {
		return Budget{}, false
	}
	return c.budget.last, true
}
