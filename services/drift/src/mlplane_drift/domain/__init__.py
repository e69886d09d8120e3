"""The drift service's own rules, free of I/O (the statistics live beside, in the
package's pure modules: profile, window, detect, severity)."""
