package worker

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/pentecost/pentecost/worker/engine"
)

// Chain is a translator that tries its members in order and returns the
// first answer: an LLM whose answer the guard refused (ErrBadResponse), a
// service out of quota or unreachable, falls back to the next, e.g.
// llm → deepl → apertium. A cancelled or expired context stops it at once.
type Chain struct {
	Members []Translator
}

// NewChain returns one translator for members: the member itself when
// there is one, a *ContextChain when any member reads context, else a
// *Chain.
func NewChain(members ...Translator) Translator {
	if len(members) == 1 {
		return members[0]
	}
	c := Chain{Members: members}
	for _, m := range members {
		if _, ok := m.(ContextTranslator); ok {
			return &ContextChain{c}
		}
	}
	return &c
}

// Name implements Translator: the members' names, e.g. "llm>deepl".
func (c *Chain) Name() string {
	names := make([]string, len(c.Members))
	for i, m := range c.Members {
		names[i] = m.Name()
	}
	return strings.Join(names, ">")
}

// Translate implements Translator.
func (c *Chain) Translate(ctx context.Context, text, from, to string) (string, error) {
	return c.translate(ctx, text, from, to, nil)
}

func (c *Chain) translate(ctx context.Context, text, from, to string, previous []string) (string, error) {
	var errs []error
	for _, m := range c.Members {
		var (
			out string
			err error
		)
		if ct, ok := m.(ContextTranslator); ok && previous != nil {
			out, err = ct.TranslateContext(ctx, text, from, to, previous)
		} else {
			out, err = m.Translate(ctx, text, from, to)
		}
		if err == nil && strings.TrimSpace(out) != "" {
			return out, nil
		}
		if err == nil {
			err = &engine.Error{Engine: m.Name(), Code: engine.ErrBadResponse, Err: errEmpty}
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return "", errs[0]
	}
	// The last member's failure is the chain's code (errors.As finds the
	// first in a join); the others stay for the logs.
	return "", &chainError{last: errs[len(errs)-1], all: errors.Join(errs...)}
}

// chainError reports the last member's error first, so that the
// chain's engine.Error code is the one that ended it.
type chainError struct {
	last, all error
}

func (e *chainError) Error() string   { return "every translator failed: " + e.all.Error() }
func (e *chainError) Unwrap() []error { return []error{e.last, e.all} }

// Close closes the members that hold resources.
func (c *Chain) Close() error {
	var first error
	for _, m := range c.Members {
		if cl, ok := m.(io.Closer); ok {
			if err := cl.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// ContextChain is a Chain with a member that reads context: it passes
// previous to those members and plain text to the others.
type ContextChain struct {
	Chain
}

// TranslateContext implements ContextTranslator.
func (c *ContextChain) TranslateContext(ctx context.Context, text, from, to string, previous []string) (string, error) {
	if previous == nil {
		previous = []string{}
	}
	return c.translate(ctx, text, from, to, previous)
}

var (
	_ Translator        = (*Chain)(nil)
	_ ContextTranslator = (*ContextChain)(nil)
)
