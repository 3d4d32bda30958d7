// Package copyjob tracks OneDrive server-side copy jobs from the moment the
// service accepted them (202 + monitor URL) until they complete or fail.
//
// # What it owns
//
//   - A schedule: one goroutine (Tracker.Run) polls every unfinished job's
//     monitor URL, first after Config.FirstInterval, then backing off by
//     Config.BackoffFactor up to Config.MaxInterval. A job someone Waits on
//     (cp blocked in copy_file_range) does not back off: it is polled halfway
//     to the end its percentageComplete readings predict, at least
//     FirstInterval apart and never later than the back-off would (every
//     FirstInterval while there is no prediction), so Wait returns within
//     about FirstInterval of the job's end; a Wait that starts on a job
//     scheduled far ahead pulls its next poll in. A Retry-After from the
//     service is honoured (never polled sooner). Total poll rate is bounded by
//     Config.MaxPollsPerSecond however many jobs run, and at most
//     Config.MaxConcurrentPolls polls are in flight.
//   - Durability: jobs (unfinished and recent history) live under Config.Dir
//     as a snapshot and an append-only log (store.go): a change costs one
//     appended record and one fsync whatever the number of jobs, and
//     concurrent changes share the write. A new Tracker on the same directory
//     resumes polling unfinished jobs, so a remount still reveals the results
//     of copies started before it.
//   - Notification: Config.OnDone is called once per job when it reaches a
//     terminal state, from a goroutine of the tracker, with no lock held.
//     Wait and Changed let callers block on results; Pending lists the jobs
//     whose outcome has not been handed over yet.
//   - What the caller did meanwhile: Spec carries the source version copied
//     (for reads of a pending copy, and for completing a failed one through
//     the byte path) and Spec.Then, the changes made to the pending
//     destination (rename, mtime, unlink), which Amend records durably for
//     OnDone to apply.
//   - Pacing: one pause for polls and new copies alike (a throttled poll, or
//     Pause for a Retry-After seen elsewhere), and WaitStartSlot, a token
//     bucket callers wait on before each POST /copy.
//
// # What it must not do
//
// It does not talk HTTP: a Poller reads one poll of a monitor URL, and
// *remote.Client is one. It does not fetch the new item or touch the file
// tree, nor apply Spec.Then; that is OnDone's business.
//
// # Contract for a Poller
//
// Monitor performs one GET of the monitor URL with a client that sends no
// Authorization header and follows no redirect, and decides on the JSON
// status (202, 200 and 303 all occur), as remote.Client.Monitor does. The
// tracker takes:
//
//   - a *remote.JobStatus for every answer the service gave about the job:
//     its State decides (JobRunning, JobCompleted with the new item's
//     ResourceID, JobFailed with Err's Code and Message), Status is kept as
//     the job's Raw word, and a RetryAfter on a good answer delays that job's
//     next poll;
//   - a *remote.Error with status 404 or 410 (or 401/403, the
//     pre-authenticated URL no longer valid) as "the monitor is gone": the
//     tracker fails the job after Config.MaxGonePolls such answers in a row;
//   - an error matching remote.ErrThrottled whose *remote.Error carries a
//     RetryAfter: the tracker pauses all polling (and start slots) for that
//     long and does not count it as a failure;
//   - any other error (network, 5xx, a body that is not JSON) as transient:
//     it is retried with back-off; a job fails only when such errors persist
//     for Config.MaxConsecutiveErrors polls and Config.MaxErrorDuration.
//
// # Secrets
//
// Monitor URLs are pre-authenticated (the token sits in the query string, or
// in the path on OneDrive Personal). The tracker never logs them, never puts
// them in Job.Error or the status JSON, keeps them in 0600 files in a 0700
// directory, and forgets them once a job has finished: the job's records
// from then on carry none, and the earlier records that did are dropped at
// the next compaction (at the latest at Close or the next New). Logs name
// job ids, paths and the monitor's host only.
//
// # Concurrency
//
// All methods are safe for concurrent use. Lock order: Tracker.saveMu before
// Tracker.mu. Neither is held while calling the Poller or OnDone; Tracker.mu
// is held while calling Amend's fn.
package copyjob
