package graphtest

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// Naming rules (docs/graph-contract.md §8). The fake enforces:
//
//   - the characters " * : < > ? / \ | and control characters (U+0000–U+001F,
//     U+007F) are forbidden anywhere;
//   - no leading or trailing space, no trailing period (files and folders);
//   - no name beginning with "~$";
//   - reserved names, compared case-insensitively and only as the whole name
//     (as the OneDrive list states them; "CON.txt" is allowed): ".lock",
//     CON, PRN, AUX, NUL, COM0–COM9, LPT0–LPT9, "desktop.ini";
//   - "_vti_" anywhere in the name (case-insensitively);
//   - a name is at most 255 characters, and the whole decoded path below the
//     root ("a/b/c", without a leading slash) at most 400 characters.
//     Characters are counted as Unicode code points. Only the path of the
//     item itself is checked on a rename or move, not those of its
//     descendants.
//
// Every violation is 400 invalidRequest. Length violations carry innerError
// code pathIsTooLong; the others nameContainsInvalidCharacters, with the
// message "The provided name cannot contain any illegal characters." — or,
// for a trailing period or space, "The provided name contains invalid
// trailing character.".

const (
	maxNameLen = 255
	maxPathLen = 400

	innerInvalidChars = "nameContainsInvalidCharacters"
	innerPathTooLong  = "pathIsTooLong"

	msgIllegalChars    = "The provided name cannot contain any illegal characters."
	msgTrailingChar    = "The provided name contains invalid trailing character."
	msgLeadingSpace    = "The provided name cannot begin with a space."
	msgReservedName    = "The provided name is reserved and cannot be used."
	msgNameTooLong     = "The provided name is too long."
	msgPathTooLong     = "The resulting path is too long."
	forbiddenNameChars = "\"*:<>?/\\|"
)

func errBadName(message string) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidRequest, message, innerInvalidChars}
}

func errTooLong(message string) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidRequest, message, innerPathTooLong}
}

// validateName checks one name against the rules above.
func validateName(name string) *apiError {
	if name == "" {
		return errInvalid("The name of the item is missing.")
	}
	if utf8.RuneCountInString(name) > maxNameLen {
		return errTooLong(msgNameTooLong)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(forbiddenNameChars, c) {
			return errBadName(msgIllegalChars)
		}
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return errBadName(msgTrailingChar)
	}
	if strings.HasPrefix(name, " ") {
		return errBadName(msgLeadingSpace)
	}
	if strings.HasPrefix(name, "~$") {
		return errBadName(msgIllegalChars)
	}
	lower := strings.ToLower(name)
	if strings.Contains(lower, "_vti_") || isReservedName(lower) {
		return errBadName(msgReservedName)
	}
	return nil
}

// isReservedName reports whether a lower-cased name is reserved.
func isReservedName(lower string) bool {
	switch lower {
	case ".lock", "con", "prn", "aux", "nul", "desktop.ini":
		return true
	}
	if len(lower) == 4 && (strings.HasPrefix(lower, "com") || strings.HasPrefix(lower, "lpt")) {
		return lower[3] >= '0' && lower[3] <= '9'
	}
	return false
}

// checkNewPath validates name for an item placed under parent: the name
// rules and the 400-character path limit. Called with s.mu held.
func (s *Server) checkNewPath(d *drive, parent *item, name string) *apiError {
	if aerr := validateName(name); aerr != nil {
		return aerr
	}
	p := strings.TrimPrefix(s.pathOf(d, parent)+"/"+name, "/")
	if utf8.RuneCountInString(p) > maxPathLen {
		return errTooLong(msgPathTooLong)
	}
	return nil
}
