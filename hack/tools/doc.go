// Package tools pins the versions of the code generators the project runs
// (see the tool directives in go.mod). It has no code of its own.
package tools
