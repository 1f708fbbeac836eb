// Package check holds the few rules that several component Configs share, so each is
// written once. Every Config follows the OpenTelemetry collector's habit: SetDefaults
// fills the zero fields, then Validate only checks and names the bad field.
package check
