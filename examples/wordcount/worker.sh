#!/bin/sh
# Counts the words of standard input: what BOINC's wrapper gives it is the job's input file.
exec wc -w
