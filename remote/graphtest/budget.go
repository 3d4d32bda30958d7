package graphtest

import (
	"net/http"
	"strconv"
	"time"
)

// The service meters each application in resource units (RU) per minute
// (docs/graph-contract.md §7): a single-item request, a download and a
// delta with a token cost 1; a listing, a delta without a token and every
// write (create, update, delete, upload, copy) cost 2; permission
// operations cost 5. Pre-authenticated URLs (download, upload session,
// monitor) are not Graph requests and cost nothing. From 80% of the
// budget on, answers carry RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (seconds); a request over the budget is answered 429 with
// a Retry-After until the window ends, and throttled requests count too.
//
// The fake meters in fixed one-minute windows (the service's window is its
// own business); Options.ResourceUnitsPerMinute 0 turns metering off.

// budgetState is the current metering window. Guarded by Server.mu.
type budgetState struct {
	perMinute int
	start     time.Time // of the current window; zero before the first request
	used      int
}

// requestCost is the resource units of a Graph request of operation op.
func requestCost(op string, r *http.Request) int {
	switch op {
	case opItemGet, opDriveGet, opContentGet, opMe, opSiteGet, opSiteDrive, opSharesGet:
		return 1
	case opDelta:
		if r.URL.Query().Get("token") != "" {
			return 1
		}
		return 2
	case opPermissions, opInvite, opCreateLink:
		return 5
	default:
		return 2
	}
}

// SetResourceBudget meters Graph requests at perMinute resource units per
// minute from now on (0: off), starting a new window.
func (s *Server) SetResourceBudget(perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budget = budgetState{perMinute: max(perMinute, 0)}
}

// chargeBudget meters a Graph request: it sets the RateLimit headers near
// the budget, and answers 429 (reporting true) over it.
func (s *Server) chargeBudget(w http.ResponseWriter, r *http.Request, op string) bool {
	s.mu.Lock()
	b := &s.budget
	if b.perMinute <= 0 {
		s.mu.Unlock()
		return false
	}
	now := s.now()
	if b.start.IsZero() || now.Sub(b.start) >= time.Minute {
		b.start, b.used = now, 0
	}
	cost := requestCost(op, r)
	over := b.used+cost > b.perMinute
	b.used += cost
	limit, used := b.perMinute, b.used
	reset := b.start.Add(time.Minute).Sub(now)
	s.mu.Unlock()

	resetSecs := strconv.FormatInt(int64((reset+time.Second-1)/time.Second), 10)
	if over {
		s.countThrottled()
		w.Header().Set("Retry-After", resetSecs)
		writeError(w, r, http.StatusTooManyRequests, codeActivityLimit,
			"The request has been throttled: the application's resource units for this minute are used up.", "throttledRequest")
		return true
	}
	if used*5 >= limit*4 {
		h := w.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(limit))
		h.Set("RateLimit-Remaining", strconv.Itoa(limit-used))
		h.Set("RateLimit-Reset", resetSecs)
	}
	return false
}
