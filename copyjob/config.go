package copyjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Config of a Tracker. Zero fields take the defaults shown.
type Config struct {
	// Dir holds the jobs (jobs.json and a jobs-NNNNNN.log, mode 0600; Dir
	// is created 0700).
	// "" keeps jobs in memory only: nothing survives a restart.
	Dir string
	// Poller reads monitor URLs. Required.
	Poller Poller
	// Logger receives the tracker's logs; nil discards them.
	Logger *slog.Logger

	// FirstInterval is the delay from Add to the first poll. Jobs resumed from
	// disk are polled as soon as Run starts (within the rate bound). It is
	// also the shortest gap between two polls of a job someone Waits on, and
	// the gap used while such a job reports no progress to predict its end
	// from (see schedule.due). Default 250ms.
	FirstInterval time.Duration
	// MaxInterval caps the delay between two polls of a job (a Retry-After
	// may ask for longer). Default 5s.
	MaxInterval time.Duration
	// BackoffFactor multiplies the delay after every poll of an unfinished job.
	// Must be >= 1. Default 1.5.
	BackoffFactor float64
	// MaxPollsPerSecond bounds the total poll rate, however many jobs run:
	// polls are spaced at least 1s/MaxPollsPerSecond apart. Negative means
	// unbounded.
	//
	// Default 50. The bound only guards against a burst of jobs (a script
	// copying hundreds of files) turning into a burst of requests; the
	// service says when it wants less with 429/503 + Retry-After, which
	// pauses all polling (see the package doc, "Contract for a Poller").
	// 50/s reveals 200 jobs that end together within 4s (20/s took 10s),
	// stays below the pace rclone's OneDrive backend allows its whole
	// traffic (one call per 10ms), and is about what MaxConcurrentPolls
	// polls in flight sustain anyway at a monitor round trip of ~150ms, so
	// against the real service the two bounds meet.
	MaxPollsPerSecond float64
	// MaxStartsPerSecond and StartBurst pace WaitStartSlot, which callers
	// call before each POST /copy: a token bucket of StartBurst slots
	// refilled at MaxStartsPerSecond. The first StartBurst copies start at
	// once (a `cp -r` of a folder of hundreds of files returns as fast as
	// the service accepts the copies), later ones at the steady rate: a
	// `cp -r` of 3,000 files starts them within about 40s. Within those
	// bounds Budget, when the service reports its budget, spreads the starts
	// so that copies use at most half of what is left; a Retry-After from
	// the service (Pause) holds them all. Negative MaxStartsPerSecond means
	// unbounded. Defaults 50 and 1,000.
	MaxStartsPerSecond float64
	StartBurst         int
	// Lister, if set, lists a folder's children afresh (not from a cache):
	// the tracker then confirms file copies due together into one folder by
	// one listing instead of one monitor poll each (confirm.go).
	Lister func(ctx context.Context, folderID string) ([]*remote.Item, error)
	// Budget, if set, reports the service's last word on the request
	// budget: units left (a copy costs StartCost) until reset; ok false when
	// the service has not spoken for the current window (it speaks from 80%
	// used on). See WaitStartSlot.
	Budget func() (remaining int, reset time.Time, ok bool)
	// MaxConcurrentPolls bounds the polls in flight. Default 8.
	MaxConcurrentPolls int
	// PollTimeout bounds one poll. Default 30s.
	PollTimeout time.Duration

	// MaxHistory is how many finished jobs are kept (in memory and on disk);
	// the oldest finished are dropped first. Default 200; negative keeps none.
	MaxHistory int
	// A job fails with CodeMonitorUnreachable when its polls have failed
	// (network, 5xx, undecodable answers) MaxConsecutiveErrors times in a row
	// AND for at least MaxErrorDuration, so neither a burst of fast errors nor
	// one error after a laptop's sleep gives up on a copy the service is still
	// running. Defaults 10 and 10 minutes.
	MaxConsecutiveErrors int
	MaxErrorDuration     time.Duration
	// MaxGonePolls is how many "monitor gone" answers (404, 410, 401, 403) in
	// a row fail a job with CodeMonitorGone. Default 3.
	MaxGonePolls int
	// SaveDelay debounces writes of progress (status words, percentages):
	// such changes reach disk within SaveDelay. Add and terminal states are
	// written before Add returns and before OnDone runs. Default 1s.
	SaveDelay time.Duration

	// OnDone, if set, is called once per job when it becomes terminal,
	// including jobs that finished (or were found finished) after a restart.
	// It runs on a goroutine of the tracker (one at a time, in finishing
	// order) with no lock held, after the terminal state is on disk; the job
	// is reported terminal (Get, Jobs, Wait) only once OnDone has returned,
	// so whoever sees "completed" sees OnDone's effects too. If the process
	// dies before OnDone returns, the next Tracker calls it again for that job
	// (at least once across crashes; exactly once within a process).
	// OnDone may call Get, Jobs, LatestForSource, Pending and Amend; it must
	// not call Close, nor Wait on the job it is given.
	OnDone func(Job)
}

// Defaults of Config, exported for documentation and for callers' flags.
const (
	DefaultFirstInterval        = 250 * time.Millisecond
	DefaultMaxInterval          = 5 * time.Second
	DefaultBackoffFactor        = 1.5
	DefaultMaxPollsPerSecond    = 50
	DefaultMaxConcurrentPolls   = 8
	DefaultMaxStartsPerSecond   = 50
	DefaultStartBurst           = 1000
	DefaultPollTimeout          = 30 * time.Second
	DefaultMaxHistory           = 200
	DefaultMaxConsecutiveErrors = 10
	DefaultMaxErrorDuration     = 10 * time.Minute
	DefaultMaxGonePolls         = 3
	DefaultSaveDelay            = time.Second
)

// withDefaults returns c with zero fields defaulted, or an error for values
// that make no sense.
func (c Config) withDefaults() (Config, error) {
	if c.Poller == nil {
		return c, errors.New("copyjob: Config.Poller is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setDur := func(p *time.Duration, def time.Duration) {
		if *p == 0 {
			*p = def
		}
	}
	setInt := func(p *int, def int) {
		if *p == 0 {
			*p = def
		}
	}
	setDur(&c.FirstInterval, DefaultFirstInterval)
	setDur(&c.MaxInterval, DefaultMaxInterval)
	setDur(&c.PollTimeout, DefaultPollTimeout)
	setDur(&c.MaxErrorDuration, DefaultMaxErrorDuration)
	setDur(&c.SaveDelay, DefaultSaveDelay)
	setInt(&c.MaxConcurrentPolls, DefaultMaxConcurrentPolls)
	setInt(&c.MaxHistory, DefaultMaxHistory)
	setInt(&c.MaxConsecutiveErrors, DefaultMaxConsecutiveErrors)
	setInt(&c.MaxGonePolls, DefaultMaxGonePolls)
	if c.BackoffFactor == 0 {
		c.BackoffFactor = DefaultBackoffFactor
	}
	if c.MaxPollsPerSecond == 0 {
		c.MaxPollsPerSecond = DefaultMaxPollsPerSecond
	}
	if c.MaxStartsPerSecond == 0 {
		c.MaxStartsPerSecond = DefaultMaxStartsPerSecond
	}
	setInt(&c.StartBurst, DefaultStartBurst)
	if c.MaxHistory < 0 {
		c.MaxHistory = 0
	}
	switch {
	case c.FirstInterval < 0 || c.MaxInterval < 0 || c.PollTimeout < 0 || c.MaxErrorDuration < 0 || c.SaveDelay < 0:
		return c, errors.New("copyjob: negative duration in Config")
	case c.MaxInterval < c.FirstInterval:
		return c, fmt.Errorf("copyjob: MaxInterval %s is shorter than FirstInterval %s", c.MaxInterval, c.FirstInterval)
	case c.BackoffFactor < 1:
		return c, fmt.Errorf("copyjob: BackoffFactor %g is below 1", c.BackoffFactor)
	case c.MaxConcurrentPolls < 0 || c.MaxConsecutiveErrors < 0 || c.MaxGonePolls < 0 || c.StartBurst < 0:
		return c, errors.New("copyjob: negative count in Config")
	}
	return c, nil
}

// pollSpacing is the minimum gap between two polls (0: unbounded).
func (c Config) pollSpacing() time.Duration {
	if c.MaxPollsPerSecond < 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / c.MaxPollsPerSecond)
}
