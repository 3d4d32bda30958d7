package graphtest

import (
	"encoding/json"
	"net/http"
	"time"
)

// Graph error codes used by the fake (graph-contract.md §7).
const (
	codeAccessDenied        = "accessDenied"
	codeActivityLimit       = "activityLimitReached"
	codeGeneralException    = "generalException"
	codeInvalidRange        = "invalidRange"
	codeInvalidRequest      = "invalidRequest"
	codeItemNotFound        = "itemNotFound"
	codeNameAlreadyExists   = "nameAlreadyExists"
	codeNotAllowed          = "notAllowed"
	codeNotSupported        = "notSupported"
	codeResourceModified    = "resourceModified"
	codeResyncRequired      = "resyncRequired"
	codeServiceNotAvailable = "serviceNotAvailable"
	codeQuotaLimitReached   = "quotaLimitReached"
	codeUnauthenticated     = "unauthenticated"
	codeInvalidAuthToken    = "InvalidAuthenticationToken"
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	InnerError *innerError `json:"innerError,omitempty"`
}

type innerError struct {
	Code            string `json:"code,omitempty"`
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

// writeError writes a Graph error body. inner is the detail code placed in
// innerError.code ("" for none). The request id is echoed in the
// request-id header, as the service does.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message, inner string) {
	reqID := randomToken(8)
	body := errorBody{Error: errorDetail{
		Code:    code,
		Message: message,
		InnerError: &innerError{
			Code:            inner,
			Date:            time.Now().UTC().Format("2006-01-02T15:04:05") + "Z",
			RequestID:       reqID,
			ClientRequestID: r.Header.Get("client-request-id"),
		},
	}}
	w.Header().Set("request-id", reqID)
	writeJSON(w, status, body)
}

// writeJSON writes v as the JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// formatTime renders a time as the service does: UTC, literal Z.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
