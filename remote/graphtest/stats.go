package graphtest

import (
	"maps"
	"sync"
)

// Stats are the fake's counters since it started (or since ResetStats). Tests
// and benchmarks read them to prove what crossed the wire; `GET /_fake/stats`
// serves them as JSON. Requests to the /_fake/ control API are not counted,
// so reading the counters does not change them.
type Stats struct {
	// Requests counts requests by operation name ("item.get",
	// "children.list", "download", "upload.fragment", "copy.start",
	// "monitor", "delta", "oauth.token", …; see route.go), including requests
	// answered by an injected fault or an error.
	Requests map[string]int64 `json:"requests"`
	// RequestsTotal is the sum of Requests.
	RequestsTotal int64 `json:"requestsTotal"`
	// BytesDownloaded is the number of content bytes written to clients by
	// pre-authenticated download URLs (bodies only, as sent: a range request
	// counts its range; a reset download counts what was written).
	BytesDownloaded int64 `json:"bytesDownloaded"`
	// BytesUploaded is the number of content bytes accepted from clients by
	// simple uploads and upload-session fragments.
	BytesUploaded int64 `json:"bytesUploaded"`
	// CopyJobsStarted counts copy requests accepted with 202.
	CopyJobsStarted int64 `json:"copyJobsStarted"`
	// CopyJobsCompleted counts copy jobs whose result was materialised.
	CopyJobsCompleted int64 `json:"copyJobsCompleted"`
	// CopyJobsFailed counts copy jobs that ended with status failed
	// (injected failures and conflicts at completion).
	CopyJobsFailed int64 `json:"copyJobsFailed"`
	// Throttled counts requests answered 429, 503 or 509 by fault injection.
	Throttled int64 `json:"throttled"`
	// Resets counts connections reset by fault injection (ResetEvery).
	Resets int64 `json:"resets"`
	// RepliesDropped counts requests served and then left unanswered by
	// fault injection (DropReplyEvery, DropNextReplies).
	RepliesDropped int64 `json:"repliesDropped"`
	// Blackholed counts requests that arrived while the network was
	// blackholed (SetNetwork): they were answered once it came back, or
	// never. They are not in Requests unless they were served.
	Blackholed int64 `json:"blackholed"`
}

// statsState holds the counters. It has its own mutex, a leaf lock: the
// counting methods may be called with or without Server.mu held, and while
// streaming content.
type statsState struct {
	mu sync.Mutex
	// Guarded by mu.
	c Stats
}

func (st *statsState) add(f func(c *Stats)) {
	st.mu.Lock()
	f(&st.c)
	st.mu.Unlock()
}

// countRequest counts one request of operation op. Control requests are not
// counted.
func (s *Server) countRequest(op string) {
	if op == opControl {
		return
	}
	s.stats.add(func(c *Stats) {
		if c.Requests == nil {
			c.Requests = map[string]int64{}
		}
		c.Requests[op]++
		c.RequestsTotal++
	})
}

// addDownloadBytes counts content bytes written by a download.
func (s *Server) addDownloadBytes(n int64) { s.stats.add(func(c *Stats) { c.BytesDownloaded += n }) }

// addUploadBytes counts content bytes accepted by an upload.
func (s *Server) addUploadBytes(n int64) { s.stats.add(func(c *Stats) { c.BytesUploaded += n }) }

func (s *Server) copyStarted()   { s.stats.add(func(c *Stats) { c.CopyJobsStarted++ }) }
func (s *Server) copyCompleted() { s.stats.add(func(c *Stats) { c.CopyJobsCompleted++ }) }
func (s *Server) copyFailed()    { s.stats.add(func(c *Stats) { c.CopyJobsFailed++ }) }
func (s *Server) countThrottled() {
	s.stats.add(func(c *Stats) { c.Throttled++ })
}
func (s *Server) countReset()   { s.stats.add(func(c *Stats) { c.Resets++ }) }
func (s *Server) countDropped() { s.stats.add(func(c *Stats) { c.RepliesDropped++ }) }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	c := s.stats.c
	c.Requests = maps.Clone(c.Requests)
	if c.Requests == nil {
		c.Requests = map[string]int64{}
	}
	return c
}

// ResetStats sets every counter to zero.
func (s *Server) ResetStats() {
	s.stats.mu.Lock()
	s.stats.c = Stats{}
	s.stats.mu.Unlock()
}
