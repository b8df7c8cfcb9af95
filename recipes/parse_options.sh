#!/usr/bin/env bash
# Kaldi-style option parsing: "--name value" sets the shell variable $name (dashes become
# underscores) when it is already defined by the caller; "--config file" sources a file first.
# Source it after setting defaults:   stage=0; . recipes/parse_options.sh
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) echo "usage: $0 [--name value]..."; sed -n '2,20p' "$0" | grep '^#' ; exit 0 ;;
    --config) . "$2"; shift 2 ;;
    --*=*) name="${1%%=*}"; name="${name#--}"; name="${name//-/_}"; value="${1#*=}"; shift ;;
    --*) name="${1#--}"; name="${name//-/_}"
         if [ $# -lt 2 ]; then echo "$0: option --${1#--} needs a value" >&2; exit 1; fi
         value="$2"; shift 2 ;;
    *) break ;;
  esac
  if [ -n "${name:-}" ]; then
    if ! declare -p "$name" >/dev/null 2>&1; then
      echo "$0: unknown option --${name//_/-}" >&2; exit 1
    fi
    printf -v "$name" '%s' "$value"
    unset name value
  fi
done
true
