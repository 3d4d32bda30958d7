package graphtest

import (
	"encoding/json"
	"net/http"
	"time"
)

// Graph error codes used by the fake (docs/graph-contract.md §7).
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

// errorDetail is the error object. Exactly one of the inner-error fields is
// set, by FormOptions.InnerErrorSpelling.
type errorDetail struct {
	Code         string      `json:"code"`
	Message      string      `json:"message"`
	InnerError   *innerError `json:"innerError,omitempty"`
	InnerErrorOD *innerError `json:"innererror,omitempty"`
}

type innerError struct {
	Code            string `json:"code,omitempty"`
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
	// A nested inner error (FormOptions.NestedInnerErrors), spelt as its
	// parent.
	Nested   *nestedInnerError `json:"innerError,omitempty"`
	NestedOD *nestedInnerError `json:"innererror,omitempty"`
}

type nestedInnerError struct {
	Code string `json:"code"`
}

// writeError writes a Graph error body, in the request's forms
// (FormOptions.InnerErrorSpelling, NestedInnerErrors). inner is the detail
// code placed in the inner error ("" for none). The request id is echoed in
// the request-id header, as the service does.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message, inner string) {
	forms := formsOf(r)
	od := forms.InnerErrorSpelling == innerErrorOD
	reqID := randomToken(8)
	ie := &innerError{
		Code:            inner,
		Date:            time.Now().UTC().Format("2006-01-02T15:04:05") + "Z",
		RequestID:       reqID,
		ClientRequestID: r.Header.Get("client-request-id"),
	}
	if forms.NestedInnerErrors && inner != "" {
		ie.Code = ""
		if od {
			ie.NestedOD = &nestedInnerError{Code: inner}
		} else {
			ie.Nested = &nestedInnerError{Code: inner}
		}
	}
	body := errorBody{Error: errorDetail{Code: code, Message: message}}
	if od {
		body.Error.InnerErrorOD = ie
	} else {
		body.Error.InnerError = ie
	}
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
