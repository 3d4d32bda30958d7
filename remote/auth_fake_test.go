package remote

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/oauth2"
)

// oauthFake is a small Microsoft-identity-platform look-alike for the tests
// of this package: /{tenant}/oauth2/v2.0/devicecode and /token, with
// form-encoded requests and scripted answers. Every secret it issues contains
// "SECRET" so that tests can check none leaks into logs or messages.
type oauthFake struct {
	srv *httptest.Server
	t   *testing.T

	mu sync.Mutex
	// pollAnswers scripts the device_code grant: each poll takes the next
	// entry; "" issues a token, "http503" answers 503 with an HTML body, any
	// other value is sent as the OAuth error code. When the script is used
	// up, the last entry repeats.
	pollAnswers []string
	// deviceAnswer, when set, replaces the devicecode endpoint's answer:
	// status and JSON body.
	deviceStatus int
	deviceBody   map[string]any
	// refreshError, when set, is the OAuth error code of every refresh.
	refreshError string
	// refreshStatus is the HTTP status of refresh errors (400 if 0).
	refreshStatus int
	// omitRefreshToken makes refreshes answer without a new refresh token.
	omitRefreshToken bool

	deviceRequests int
	polls          int
	refreshes      int
	issued         int
	validRefresh   map[string]bool
	forms          []url.Values // every token request, in order
}

const (
	fakeDeviceCode = "DEVICE-CODE-SECRET-7f3a"
	fakeUserCode   = "WXYZ-1234"
	fakeTenant     = "consumers"
)

func newOAuthFake(t *testing.T) *oauthFake {
	t.Helper()
	f := &oauthFake{t: t, validRefresh: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/devicecode", f.handleDeviceCode)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", f.handleToken)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// profile returns a profile pointing at the fake.
func (f *oauthFake) profile() Profile {
	return Profile{GraphURL: f.srv.URL + "/v1.0", AuthURL: f.srv.URL, Tenant: fakeTenant,
		ClientID: "client-abc", Scopes: DefaultScopes()}
}

func (f *oauthFake) config() *oauth2.Config { return f.profile().OAuthConfig() }

// grantRefresh registers a refresh token the fake accepts (as if it had
// issued it earlier).
func (f *oauthFake) grantRefresh(rt string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.validRefresh[rt] = true
}

func (f *oauthFake) counts() (deviceRequests, polls, refreshes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deviceRequests, f.polls, f.refreshes
}

func (f *oauthFake) tokenForms() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.forms...)
}

func (f *oauthFake) parseForm(w http.ResponseWriter, r *http.Request) bool {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		f.t.Errorf("%s: Content-Type %q", r.URL.Path, ct)
	}
	if r.PathValue("tenant") != fakeTenant {
		f.t.Errorf("%s: tenant %q", r.URL.Path, r.PathValue("tenant"))
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	if r.PostForm.Get("client_id") == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: client_id missing")
		return false
	}
	return true
}

func (f *oauthFake) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	if !f.parseForm(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deviceRequests++
	assert.Equal(f.t, "Files.ReadWrite.All offline_access", r.PostForm.Get("scope"))
	if f.deviceBody != nil {
		writeJSONStatus(w, f.deviceStatus, f.deviceBody)
		return
	}
	verify := f.srv.URL + "/devicelogin"
	writeJSONStatus(w, http.StatusOK, map[string]any{
		"device_code":      fakeDeviceCode,
		"user_code":        fakeUserCode,
		"verification_uri": verify,
		"expires_in":       900,
		"interval":         5,
		"message": fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.",
			verify, fakeUserCode),
	})
}

func (f *oauthFake) handleToken(w http.ResponseWriter, r *http.Request) {
	if !f.parseForm(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forms = append(f.forms, r.PostForm)
	switch r.PostForm.Get("grant_type") {
	case deviceCodeGrantType:
		f.polls++
		if r.PostForm.Get("device_code") != fakeDeviceCode {
			writeOAuthError(w, http.StatusBadRequest, "bad_verification_code", "AADSTS70019: unknown code")
			return
		}
		answer := ""
		if n := len(f.pollAnswers); n > 0 {
			answer = f.pollAnswers[min(f.polls-1, n-1)]
		}
		switch answer {
		case "":
			f.issueLocked(w, true)
		case "http503":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "<html>busy</html>")
		default:
			writeOAuthError(w, http.StatusBadRequest, answer,
				"AADSTS70016: OAuth 2.0 device flow error ("+answer+").\r\nTrace ID: 0000\r\nCorrelation ID: 1111")
		}
	case "refresh_token":
		f.refreshes++
		switch {
		case f.refreshError != "":
			status := f.refreshStatus
			if status == 0 {
				status = http.StatusBadRequest
			}
			writeOAuthError(w, status, f.refreshError,
				"AADSTS70008: The provided authorization code or refresh token has expired.\r\nTrace ID: 2222")
		case !f.validRefresh[r.PostForm.Get("refresh_token")]:
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS9002313: Invalid request.")
		default:
			f.issueLocked(w, !f.omitRefreshToken)
		}
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003")
	}
}

// issueLocked answers with a new token numbered f.issued.
func (f *oauthFake) issueLocked(w http.ResponseWriter, withRefresh bool) {
	f.issued++
	body := map[string]any{
		"token_type":     "Bearer",
		"scope":          "Files.ReadWrite.All",
		"expires_in":     3599,
		"ext_expires_in": 3599,
		"access_token":   fmt.Sprintf("ACCESS-SECRET-%d", f.issued),
	}
	if withRefresh {
		rt := fmt.Sprintf("REFRESH-SECRET-%d", f.issued)
		f.validRefresh[rt] = true
		body["refresh_token"] = rt
	}
	writeJSONStatus(w, http.StatusOK, body)
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSONStatus(w, status, map[string]any{
		"error": code, "error_description": desc, "error_codes": []int{70016},
	})
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// assertNoSecrets fails if s contains anything the fake issued as a secret.
func assertNoSecrets(t *testing.T, s string) {
	t.Helper()
	assert.NotContains(t, s, "SECRET", "a token or device code leaked")
	assert.False(t, strings.Contains(s, fakeDeviceCode))
}
