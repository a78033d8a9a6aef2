# quorumctl.bash - bash completion of quorumctl (the quorumfs cluster CLI).
#
# Installed as $(datadir)/bash-completion/completions/quorumctl, where
# bash-completion loads it the first time quorumctl is completed; or source
# it from ~/.bashrc. Completes the commands and the options of
# `quorumctl --help`; it never contacts a node (keys are not completed).

_quorumctl()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null 2>&1; then
		_init_completion || return
	else
		COMPREPLY=()
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local global_opts="--node --timeout --json --secret --help -h"
	local commands="get put delete status ring init-secret bench repair siblings leave"

	# Options that take a value: complete nothing for the value itself,
	# except where a value list is known.
	case $prev in
	--secret)
		COMPREPLY=($(compgen -f -- "$cur"))
		return 0
		;;
	--node|--timeout|--context|--r|--w|--n|--nodes|--clients|--keys|\
	--duration|--value-size|--get-percent|--seed|--range|--wait|--id)
		return 0
		;;
	esac

	# Find the command word (the first word that is not an option or an
	# option's value).
	local i cmd="" w
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		case $w in
		--node|--timeout|--secret)
			((i++))
			;;
		-*)
			;;
		*)
			cmd=$w
			break
			;;
		esac
	done

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return 0
	fi

	local opts=""
	case $cmd in
	get)
		opts="--r --n --replica-only"
		;;
	put)
		opts="--context --w --n"
		;;
	delete)
		opts="--context --w --n"
		;;
	status|ring)
		opts=""
		;;
	siblings)
		opts="--r --n --no-digest"
		;;
	leave)
		opts="--id"
		;;
	init-secret)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--force" -- "$cur"))
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		return 0
		;;
	repair)
		opts="--range --wait --json"
		;;
	bench)
		opts="--nodes --clients --keys --duration --value-size --get-percent --r --w --n --seed --preload --json"
		;;
	*)
		return 0
		;;
	esac
	# get/put/delete/status also take the global options after the command.
	[[ $cmd != bench ]] && opts="$opts --json --node --timeout"
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	fi
	return 0
}
complete -F _quorumctl quorumctl
