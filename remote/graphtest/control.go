package graphtest

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The control API, under /_fake/, lets tests and people drive the fake at
// run time: counters, faults, answer forms, copy and OAuth knobs, device-code approval,
// token and delta-token expiry. It needs no authentication and is meant for
// a fake listening on loopback (the default of `onedrivefs fake-server`):
// anyone who can reach it can change the fake's behaviour. Its requests are
// neither counted nor hit by faults. Bodies are JSON; durations are strings
// such as "2s". PUT merges: fields absent from the body keep their value.

// controlEndpoint documents one control endpoint (GET /_fake/ lists them).
type controlEndpoint struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Description string `json:"description"`
}

// controlEndpoints lists the control API (a function, so that no package
// state is mutable).
func controlEndpoints() []controlEndpoint {
	return []controlEndpoint{
		{"GET", "/_fake/", "this list"},
		{"GET", "/_fake/stats", "counters: requests per operation, bytes downloaded and uploaded, copy jobs started/completed/failed"},
		{"POST", "/_fake/stats/reset", "set every counter to zero"},
		{"GET", "/_fake/faults", "the injected faults in force"},
		{"PUT", "/_fake/faults", "change injected faults (merge); counters of every-Nth faults restart"},
		{"DELETE", "/_fake/faults", "remove every injected fault"},
		{"GET", "/_fake/forms", "which form the fake answers in where the service varies: downloadIgnoresRange, innerErrorSpelling, deltaLinkForm, …"},
		{"PUT", "/_fake/forms", "change the forms (merge)"},
		{"DELETE", "/_fake/forms", "back to the default forms"},
		{"GET", "/_fake/copy", "copy job knobs: latency, rate, monitorStyle, …"},
		{"PUT", "/_fake/copy", "change copy job knobs (merge); running jobs keep their timing"},
		{"GET", "/_fake/jobs", "copy jobs: id, status, percentage, destination, error"},
		{"GET", "/_fake/auth", "OAuth knobs: token lifetime, manual approval, …"},
		{"PUT", "/_fake/auth", "change OAuth knobs (merge)"},
		{"POST", "/_fake/devicecodes/{user_code}/approve", "approve a pending device code"},
		{"POST", "/_fake/devicecodes/{user_code}/decline", "decline a pending device code"},
		{"POST", "/_fake/tokens", "issue an access token (as after a sign-in)"},
		{"POST", "/_fake/tokens/expire", "expire every access token issued so far"},
		{"POST", "/_fake/delta/expire", "make every delta token stale (410 resyncRequired)"},
		{"POST", "/_fake/save", "write the drive to the data directory now"},
		{"GET", "/_fake/network", "the network mode: up, refuse or blackhole"},
		{"PUT", "/_fake/network", "switch the network: {\"mode\":\"refuse\"} closes the API port (connections refused), \"blackhole\" accepts connections and answers nothing (a download being sent stops mid-body), \"up\" serves again on the same port"},
	}
}

// controlError is the error body of the control API.
type controlError struct {
	Error string `json:"error"`
}

func controlFail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, controlError{Error: msg})
}

// serveControl serves /_fake/…; rt.rest is the path after "/_fake/".
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request, rt route) {
	path := strings.Trim(rt.rest, "/")
	key := r.Method + " " + path
	if code, verb, ok := deviceCodeAction(path); ok {
		if r.Method != http.MethodPost {
			controlFail(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		s.controlDeviceCode(w, code, verb)
		return
	}
	if s.serveDirectoryControl(w, r, path) {
		return
	}
	switch key {
	case "GET ":
		writeJSON(w, http.StatusOK, map[string]any{"endpoints": append(controlEndpoints(), directoryControlEndpoints()...)})
	case "GET stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case "POST stats/reset":
		s.ResetStats()
		writeJSON(w, http.StatusOK, s.Stats())
	case "GET faults":
		writeJSON(w, http.StatusOK, s.Faults())
	case "PUT faults":
		o := s.Faults()
		if !readControlBody(w, r, &o) {
			return
		}
		s.SetFaults(o)
		writeJSON(w, http.StatusOK, s.Faults())
	case "DELETE faults":
		s.SetFaults(FaultOptions{})
		writeJSON(w, http.StatusOK, s.Faults())
	case "GET forms":
		writeJSON(w, http.StatusOK, s.Forms())
	case "PUT forms":
		o := s.Forms()
		if !readControlBody(w, r, &o) {
			return
		}
		if err := s.SetForms(o); err != nil {
			controlFail(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.Forms())
	case "DELETE forms":
		_ = s.SetForms(FormOptions{})
		writeJSON(w, http.StatusOK, s.Forms())
	case "GET copy":
		writeJSON(w, http.StatusOK, s.CopyOptions())
	case "PUT copy":
		o := s.CopyOptions()
		if !readControlBody(w, r, &o) {
			return
		}
		if err := s.SetCopyOptions(o); err != nil {
			controlFail(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.CopyOptions())
	case "GET jobs":
		writeJSON(w, http.StatusOK, map[string]any{"jobs": s.CopyJobs()})
	case "GET auth":
		writeJSON(w, http.StatusOK, s.AuthOptions())
	case "PUT auth":
		o := s.AuthOptions()
		if !readControlBody(w, r, &o) {
			return
		}
		s.SetAuthOptions(o)
		writeJSON(w, http.StatusOK, s.AuthOptions())
	case "POST tokens":
		tok := s.IssueToken()
		writeJSON(w, http.StatusOK, map[string]any{
			"token_type":   "Bearer",
			"access_token": tok,
			"expires_in":   int64(s.AuthOptions().TokenLifetime / time.Second),
		})
	case "POST tokens/expire":
		s.ExpireTokens()
		writeJSON(w, http.StatusOK, map[string]string{"status": "expired"})
	case "POST delta/expire":
		s.ExpireDeltaTokens()
		writeJSON(w, http.StatusOK, map[string]string{"status": "expired"})
	case "GET network":
		writeJSON(w, http.StatusOK, networkJSON{Mode: s.Network()})
	case "PUT network":
		var body networkJSON
		if !readControlBody(w, r, &body) {
			return
		}
		// Refusing closes every connection of the API port but the one
		// carrying this request, which closes after the reply.
		conn, _ := r.Context().Value(connKey{}).(net.Conn)
		if body.Mode == NetworkRefuse && conn != nil {
			w.Header().Set("Connection", "close")
		}
		if err := s.setNetwork(body.Mode, conn); err != nil {
			controlFail(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, networkJSON{Mode: s.Network()})
	case "POST save":
		if err := s.Save(); err != nil {
			controlFail(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "saved"})
	default:
		for _, e := range controlEndpoints() {
			if strings.Trim(strings.TrimPrefix(e.Path, "/_fake"), "/") == path {
				controlFail(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on /_fake/"+path)
				return
			}
		}
		controlFail(w, http.StatusNotFound, "unknown control endpoint /_fake/"+path+"; GET /_fake/ lists them")
	}
}

// deviceCodeAction parses "devicecodes/{code}/approve|decline".
func deviceCodeAction(path string) (code, verb string, ok bool) {
	parts := strings.Split(path, "/")
	if len(parts) != 3 || parts[0] != "devicecodes" || (parts[2] != "approve" && parts[2] != "decline") {
		return "", "", false
	}
	code, err := url.PathUnescape(parts[1])
	return code, parts[2], err == nil
}

func (s *Server) controlDeviceCode(w http.ResponseWriter, code, verb string) {
	var err error
	if verb == "approve" {
		err = s.ApproveDeviceCode(code)
	} else {
		err = s.DeclineDeviceCode(code)
	}
	switch {
	case errors.Is(err, errUnknownUserCode):
		controlFail(w, http.StatusNotFound, err.Error())
	case err != nil:
		controlFail(w, http.StatusConflict, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"userCode": code, "status": verb + "d"})
	}
}

// readControlBody decodes a JSON body into v (merging into its current
// value); on failure it answers 400 and returns false.
func readControlBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		controlFail(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// CopyJobStatus describes a copy job (CopyJobs, GET /_fake/jobs).
type CopyJobStatus struct {
	ID                 string    `json:"id"`
	Status             string    `json:"status"`
	PercentageComplete float64   `json:"percentageComplete"`
	DriveID            string    `json:"driveId"`
	ParentID           string    `json:"parentId"`
	Started            time.Time `json:"started"`
	Due                time.Time `json:"due"`
	TotalBytes         int64     `json:"totalBytes"`
	ResourceID         string    `json:"resourceId,omitempty"`
	ErrorCode          string    `json:"errorCode,omitempty"`
}

// CopyJobs returns the copy jobs the server knows (running, and ended within
// CopyOptions.JobRetention), oldest first, after bringing them up to date.
func (s *Server) CopyJobs() []CopyJobStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceJobsLocked()
	now := s.now()
	out := make([]CopyJobStatus, 0, len(s.jobs))
	for _, j := range s.jobs {
		st := CopyJobStatus{ID: j.ID, Status: j.Status, DriveID: j.DriveID, ParentID: j.ParentID,
			Started: j.Started, Due: j.Due, TotalBytes: j.TotalBytes, ResourceID: j.ResourceID}
		switch {
		case j.Status == jobCompleted:
			st.PercentageComplete = 100
		case j.Error != nil:
			st.ErrorCode = j.Error.Code
		default:
			st.Status, st.PercentageComplete = j.progress(now)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Started.Equal(out[b].Started) {
			return out[a].Started.Before(out[b].Started)
		}
		return out[a].ID < out[b].ID
	})
	return out
}
