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
//   - Durability: jobs (unfinished and recent history) live in one JSON file
//     under Config.Dir, replaced atomically. A new Tracker on the same
//     directory resumes polling unfinished jobs, so a remount still reveals
//     the results of copies started before it.
//   - Notification: Config.OnDone is called once per job when it reaches a
//     terminal state, from a goroutine of the tracker, with no lock held.
//     Wait and Changed let callers block on results.
//
// # What it must not do
//
// It does not talk HTTP and does not import the rest of onedrivefs: a Poller
// reads one poll of a monitor URL, and the caller adapts its Graph client to
// that interface. It does not fetch the new item or touch the file tree; that
// is OnDone's business.
//
// # Contract for a Poller
//
// Poll performs one GET of the monitor URL with a client that sends no
// Authorization header and follows no redirect, and decides on the JSON
// status (202, 200 and 303 all occur). It reports:
//
//   - a Status for every answer the service gave about the job, including a
//     failed job (State failed, ErrorCode/ErrorMessage from the body) and a
//     legacy 303 (State completed, ResourceURL = Location);
//   - an error wrapping ErrMonitorGone when the monitor answers 404 or 410
//     (or 401/403, the pre-authenticated URL no longer valid): the tracker
//     fails the job after Config.MaxGonePolls such answers in a row;
//   - a *ThrottledError when the answer was 429/503 with Retry-After: the
//     tracker pauses all polling for that long and does not count it as a
//     failure;
//   - any other error (network, 5xx, a body that is not JSON) as it is: it is
//     retried with back-off; a job fails only when such errors persist for
//     Config.MaxConsecutiveErrors polls and Config.MaxErrorDuration.
//
// # Secrets
//
// Monitor URLs are pre-authenticated (the token sits in the query string, or
// in the path on OneDrive Personal). The tracker never logs them, never puts
// them in Job.Error or the status JSON, keeps them in a 0600 file in a 0700
// directory, and forgets them once a job has finished. Logs name job ids,
// paths and the monitor's host only.
//
// # Concurrency
//
// All methods are safe for concurrent use. Lock order: Tracker.saveMu before
// Tracker.mu. Neither is held while calling the Poller or OnDone.
package copyjob
