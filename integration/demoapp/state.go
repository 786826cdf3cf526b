package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// holdings is what the app currently holds: its DB password and its settings.
// The password itself is never reported, only a fingerprint.
type holdings struct {
	PasswordSHA256 string            `json:"password_sha256"`
	PasswordLength int               `json:"password_length"`
	Username       string            `json:"username,omitempty"`
	Settings       map[string]string `json:"settings"`
	Loaded         time.Time         `json:"loaded"`
	Reloads        int               `json:"reloads"`
	Errors         []string          `json:"errors,omitempty"`
}

// fingerprint is the first 16 hex digits of the value's SHA-256.
func fingerprint(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])[:16]
}

// parseSecret reads a rendered secret: a JSON object (its "password" and
// "username" keys) or, otherwise, the raw password with surrounding blanks
// trimmed.
func parseSecret(b []byte) (user, password string, err error) {
	t := strings.TrimSpace(string(b))
	if strings.HasPrefix(t, "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(t), &m); err != nil {
			return "", "", fmt.Errorf("secret is not valid JSON: %w", err)
		}
		p, ok := m["password"].(string)
		if !ok {
			return "", "", errors.New(`secret JSON has no string "password" key`)
		}
		u, _ := m["username"].(string)
		return u, p, nil
	}
	if t == "" {
		return "", "", errors.New("secret file is empty")
	}
	return "", t, nil
}

// readSettings reads a config directory as key → value: every regular file
// below dir (symlinks followed, so a symlink-swapped tree reads as one
// version), keyed by its slash path, value trimmed. Hidden entries (".x") are
// skipped: publishers keep their versions and temp files there.
func readSettings(dir string) (map[string]string, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("config dir %s: %w", dir, err)
	}
	out := map[string]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != root && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p) // follows a symlinked entry
		if err != nil || !st.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = strings.TrimSpace(string(b))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read config dir %s: %w", dir, err)
	}
	return out, nil
}

// store holds the current holdings and reloads them from disk.
type store struct {
	secretFile, configDir string

	mu  sync.Mutex
	cur holdings
}

// Load re-reads the secret and the settings. A part that cannot be read keeps
// its previous value and its error is reported.
func (s *store) Load(now time.Time) (holdings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.cur
	next.Errors = nil
	var errs []error
	if s.secretFile != "" {
		b, err := os.ReadFile(s.secretFile)
		if err == nil {
			var u, p string
			if u, p, err = parseSecret(b); err == nil {
				next.Username, next.PasswordSHA256, next.PasswordLength = u, fingerprint(p), len(p)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %s: %w", s.secretFile, err))
		}
	}
	if s.configDir != "" {
		m, err := readSettings(s.configDir)
		if err != nil {
			errs = append(errs, err)
		} else {
			next.Settings = m
		}
	}
	if next.Settings == nil {
		next.Settings = map[string]string{}
	}
	for _, e := range errs {
		next.Errors = append(next.Errors, e.Error())
	}
	next.Loaded = now.UTC()
	next.Reloads++
	s.cur = next
	return next, errors.Join(errs...)
}

// Get returns a copy of the current holdings.
func (s *store) Get() holdings {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.cur
	h.Settings = make(map[string]string, len(s.cur.Settings))
	for k, v := range s.cur.Settings {
		h.Settings[k] = v
	}
	return h
}

// Complete reports whether both the secret and the settings were loaded.
func (h holdings) Complete() bool {
	return h.PasswordSHA256 != "" && h.Settings != nil && len(h.Errors) == 0
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
