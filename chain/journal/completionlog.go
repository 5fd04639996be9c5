package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The completion log: files <journal file name>.done-<instance>-000001.log, ... next to the bbolt
// file, holding completion frames (completion.go) appended by Complete under a mutex, never
// synced: they only have to outlive the process, not the machine. A file is deleted once every
// completion in it was appended to bbolt (its intent resolved) and it is no longer the one being
// written. Like intent segments, the files are bound to their journal instance: those of another
// are deleted at Open.
//
// At Open every file of this instance is scanned; a completion whose intent is still pending is
// kept in memory and handed to recovery with its intent (Intent.Completion), in file order; files
// with none are deleted.

// completionFileBytes is the size past which the completion log starts a new file.
const completionFileBytes = 4 << 20

// doneFile is one completion log file.
type doneFile struct {
	no      uint64
	path    string
	pending int // completions in it whose event is not appended yet
}

type completionLog struct {
	dir, prefix, instance string
	fileBytes             int64 // a new file is started past this size
	log                   *slog.Logger

	mu      sync.Mutex
	cur     *doneFile // being written; nil until the first completion of this run
	file    *os.File
	off     int64
	nextNo  uint64
	pending map[string]*doneFile // intent id → the file holding its completion
	// found are the completions read at Open whose intent was pending then, until resolved.
	found  map[string]foundCompletion
	closed bool
}

func doneFileName(prefix, instance string, no uint64) string {
	return fmt.Sprintf("%s.done-%s-%06d.log", prefix, instance, no)
}

// write appends frame, the completion of intent id, to the current file (once per intent: the
// proxy completes each answered request once).
func (c *completionLog) write(id string, frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.file == nil || (c.off > 0 && c.off+int64(len(frame)) > c.fileBytes) {
		if err := c.rotateLocked(); err != nil {
			return err
		}
	}
	if _, err := c.file.WriteAt(frame, c.off); err != nil {
		// The offset stays: the next frame overwrites whatever part of this one was written.
		return fmt.Errorf("%w: writing a completion to %s: %w", ErrFailed, filepath.Base(c.cur.path), err)
	}
	c.off += int64(len(frame))
	c.pending[id] = c.cur
	c.cur.pending++
	return nil
}

// rotateLocked starts a new file, and deletes the one it replaces if nothing in it is pending.
func (c *completionLog) rotateLocked() error {
	no := c.nextNo
	path := filepath.Join(c.dir, doneFileName(c.prefix, c.instance, no))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: starting completion file: %w", ErrFailed, err)
	}
	c.nextNo++
	old := c.cur
	if c.file != nil {
		_ = c.file.Close()
	}
	c.cur, c.file, c.off = &doneFile{no: no, path: path}, f, 0
	if old != nil && old.pending == 0 {
		c.remove(old)
	}
	return nil
}

// resolved records that the intents ids have their event in bbolt (committed): files left with no
// pending completion, other than the current one, are deleted.
func (c *completionLog) resolved(ids []string) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.found, id)
		f, ok := c.pending[id]
		if !ok {
			continue
		}
		delete(c.pending, id)
		f.pending--
		if f.pending == 0 && f != c.cur {
			c.remove(f)
		}
	}
}

func (c *completionLog) remove(f *doneFile) {
	if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("cannot delete a completion file whose events are all journaled (deleted at the next start)", "file", f.path, "err", err)
	}
}

// foundCompletion is a completion read at Open, and its rank in the order they were written.
type foundCompletion struct {
	d    Draft
	rank int
}

// completion returns the completion read at Open for intent id, and its rank.
func (c *completionLog) completion(id string) (Draft, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.found[id]
	return f.d, f.rank, ok
}

func (c *completionLog) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.file != nil {
		_ = c.file.Close()
		c.file = nil
	}
	if c.cur != nil && c.cur.pending == 0 {
		c.remove(c.cur)
	}
}

// openCompletions reads the completion log at Open (after the intent log): the completions of
// pending intents are kept for recovery, damaged frames reported in rec.IntentsCut, files of
// another instance and files with nothing pending deleted.
func (j *Journal) openCompletions(rec *Recovery, instance string) error {
	c := &completionLog{
		dir: filepath.Dir(j.opts.Path), prefix: filepath.Base(j.opts.Path), instance: instance, log: j.log, fileBytes: completionFileBytes,
		nextNo: 1, pending: map[string]*doneFile{}, found: map[string]foundCompletion{},
	}
	j.clog = c
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("listing completion files: %w", err)
	}
	pre, mine := c.prefix+".done-", c.prefix+".done-"+instance+"-"
	var nos []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, pre) || !strings.HasSuffix(name, ".log") || !e.Type().IsRegular() {
			continue
		}
		no, perr := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, mine), ".log"), 10, 64)
		if !strings.HasPrefix(name, mine) || perr != nil || no == 0 {
			// Another journal's: its intents were dropped with their segments (dropForeignSegments).
			if err := os.Remove(filepath.Join(c.dir, name)); err != nil {
				return fmt.Errorf("deleting completion file of another journal: %w", err)
			}
			j.log.Warn("completion file of another journal file deleted", "file", name, "journal", j.opts.Path)
			continue
		}
		nos = append(nos, no)
	}
	slices.Sort(nos)
	for _, no := range nos {
		f := &doneFile{no: no, path: filepath.Join(c.dir, doneFileName(c.prefix, instance, no))}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("reading completion file: %w", err)
		}
		for _, d := range scanCompletions(b, func(d Draft) {
			if _, seen := c.found[d.Resolves]; seen || !j.ilog.has(d.Resolves) {
				return // appended before the crash (its intent is resolved), or written twice
			}
			c.found[d.Resolves] = foundCompletion{d: d, rank: len(c.found)}
			c.pending[d.Resolves] = f
			f.pending++
		}) {
			rec.IntentsCut = append(rec.IntentsCut, IntentDamage{Segment: filepath.Base(f.path), Position: d.Offset, Reason: d.Reason, Tail: d.Tail})
			j.m.IntentsCut.Inc()
			if d.Tail {
				j.log.Warn("torn completion file tail cut: a write interrupted by a crash (its intent is recovered from Flowker instead)",
					"file", f.path, "position", d.Offset, "reason", d.Reason)
			} else {
				j.log.Error("damaged completion record cut (its intent, if any, is recovered from Flowker instead)",
					"file", f.path, "position", d.Offset, "reason", d.Reason)
			}
		}
		if f.pending == 0 {
			if err := os.Remove(f.path); err != nil {
				return fmt.Errorf("deleting a journaled completion file: %w", err)
			}
		}
		c.nextNo = no + 1
	}
	rec.Completions = len(c.found)
	return nil
}
