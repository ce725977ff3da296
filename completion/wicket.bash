# SPDX-License-Identifier: MIT
# bash completion for wicket(1), installed as
# share/bash-completion/completions/wicket.
#
# Commands and options are read from `wicket --help` and `wicket CMD --help`
# (host-tool/help.c), so they are written down once.  Targets: vm/ names from
# libvirt (the -c URI, else $LIBVIRT_DEFAULT_URI, else qemu:///system, as
# wicket itself), podman/ and docker/ names of running containers when those
# CLIs exist, k8s/ pods and namespaces from kubectl (with --context), pid/
# numbers, unix/ and serial/ paths as files.  Remote paths of
# `wicket cp TARGET:PATH` are asked of the agent's sftp server with
# `wicket cp --complete` (no shell or ls needed in the guest), with a short
# timeout.  Tests: tests/integration/test_docs.py.

# Print "NAME TAKES" for every option line of `wicket [CMD] --help`; TAKES is
# 1 when a metavariable follows the names on that line.
_wicket_help_opts()
{
	local line rest takes n
	local -a names
	while IFS= read -r line; do
		[[ $line == "  -"* ]] || continue
		rest=${line#  }
		names=()
		while [[ $rest =~ ^(-[-A-Za-z0-9]+)(.*)$ ]]; do
			names+=("${BASH_REMATCH[1]}")
			rest=${BASH_REMATCH[2]}
			[[ $rest == ", -"* ]] || break
			rest=${rest#, }
		done
		takes=0
		[[ $rest =~ ^\ [^\ ] ]] && takes=1
		for n in "${names[@]}"; do
			printf '%s %s\n' "$n" "$takes"
		done
	done < <("$@" --help 2>/dev/null)
}

# Fill the associative array named $1 from the help of "$2 [$3]".
_wicket_load_opts()
{
	local -n _wicket_map=$1
	local name takes
	while read -r name takes; do
		_wicket_map[$name]=$takes
	done < <(_wicket_help_opts "${@:2}")
}

# Add candidates to COMPREPLY: each word shell-quoted, all but the ones ending
# in '/' or ':' (more to type) getting bash's trailing space.
_wicket_add()
{
	local w q
	for w; do
		# Raw words for completion/wicket.fish, which quotes them itself.
		if [[ ${WICKET_COMPLETE_RAW-} ]]; then q=$w; else printf -v q '%q' "$w"; fi
		COMPREPLY+=("$q")
		[[ $w == */ || $w == *: ]] && compopt -o nospace 2>/dev/null
	done
	return 0
}

# Files for a path typed after KIND/ ($2), as "KIND/PATH"; $3 is appended to
# non-directories (":" in cp operands).
_wicket_paths()
{
	local kind=$1 part=$2 suffix=$3 f
	local -a out=()
	while IFS= read -r f; do
		if [[ -d $f ]]; then
			out+=("$kind$f/")
		else
			out+=("$kind$f$suffix")
		fi
	done < <(compgen -f -- "$part")
	_wicket_add "${out[@]}"
}

# Targets starting with $1; $2 is appended to whole targets (":" in cp).
_wicket_targets()
{
	local cur=$1 suffix=$2 n
	local -a names=() out=()
	case $cur in
	vm/*)
		command -v virsh >/dev/null || return 0
		mapfile -t names < <(timeout 2 virsh -q -c "${_wicket_uri:-${LIBVIRT_DEFAULT_URI:-qemu:///system}}" \
			list --all --name 2>/dev/null)
		for n in "${names[@]}"; do [[ $n ]] && out+=("vm/$n"); done
		;;
	podman/* | docker/*)
		command -v "${cur%%/*}" >/dev/null || return 0
		mapfile -t names < <(timeout 2 "${cur%%/*}" ps --format '{{.Names}}' 2>/dev/null)
		for n in "${names[@]}"; do [[ $n ]] && out+=("${cur%%/*}/$n"); done
		;;
	pid/*)
		for n in /proc/[0-9]*; do out+=("pid/${n#/proc/}"); done
		;;
	k8s/*)
		_wicket_k8s "${cur#k8s/}" "$suffix"
		return 0
		;;
	unix/* | serial/*)
		_wicket_paths "${cur%%/*}/" "${cur#*/}" "$suffix"
		return 0
		;;
	*)
		mapfile -t out < <(compgen -W "vm/ podman/ docker/ pid/ k8s/ unix/ serial/ demo" -- "$cur")
		for n in "${out[@]}"; do
			[[ $n == demo ]] && _wicket_add "demo$suffix" || _wicket_add "$n"
		done
		return 0
		;;
	esac
	mapfile -t out < <(compgen -W "${out[*]}" -- "$cur")
	for n in "${out[@]}"; do _wicket_add "$n$suffix"; done
}

# k8s/[NS/]POD: pods of the kubeconfig's namespace and namespaces to go
# into, or the pods of NS; kubectl's own --context when one was given.
_wicket_k8s()
{
	local rest=$1 suffix=$2 n
	local -a kc=(timeout 2 kubectl) names=() out=()
	command -v kubectl >/dev/null || return 0
	[[ ${_wicket_ctx} ]] && kc+=("--context=$_wicket_ctx")
	if [[ $rest == */*/* ]]; then
		return 0
	elif [[ $rest == */* ]]; then
		mapfile -t names < <("${kc[@]}" "--namespace=${rest%%/*}" get pods --output=name \
			--request-timeout=2s 2>/dev/null)
		for n in "${names[@]}"; do [[ $n == pod/* ]] && out+=("k8s/${rest%%/*}/${n#pod/}"); done
	else
		mapfile -t names < <("${kc[@]}" get pods --output=name --request-timeout=2s 2>/dev/null)
		for n in "${names[@]}"; do [[ $n == pod/* ]] && out+=("k8s/${n#pod/}"); done
		mapfile -t names < <("${kc[@]}" get namespaces --output=name \
			--request-timeout=2s 2>/dev/null)
		for n in "${names[@]}"; do [[ $n == namespace/* ]] && out+=("k8s/${n#namespace/}/"); done
	fi
	mapfile -t out < <(compgen -W "${out[*]}" -- "k8s/$rest")
	for n in "${out[@]}"; do
		[[ $n == */ ]] && _wicket_add "$n" || _wicket_add "$n$suffix"
	done
}

# A cp operand: TARGET:PATH asked of the agent, else local files or targets.
_wicket_cp_operand()
{
	local cur=$1 n
	local -a names=()
	if [[ $cur =~ ^(demo|(vm|podman|docker|pid|k8s|unix|serial|vsock)/[^:]+): ]] ||
		[[ ${_wicket_proxy} && $cur =~ ^[^/:]+: ]]; then
		local target=${cur%%:*}
		mapfile -t names < <(timeout 3 "$_wicket_bin" "${_wicket_gargs[@]}" --persist 10 \
			cp --complete "$cur" 2>/dev/null)
		for n in "${names[@]}"; do [[ $n ]] && _wicket_add "$target:$n"; done
		return 0
	fi
	case $cur in
	vm/* | podman/* | docker/* | pid/* | unix/* | serial/* | k8s/*)
		_wicket_targets "$cur" ":"
		;;
	*)
		_wicket_paths "" "$cur" ""
		[[ $cur == */* ]] || _wicket_targets "$cur" ":"
		;;
	esac
}

# A word as the shell will pass it, for the simple quoting people type:
# 'x', "x", and backslash escapes.
_wicket_dequote()
{
	local w=$1
	if [[ $w == \'*\' && ${#w} -ge 2 ]]; then
		w=${w:1:${#w}-2}
	elif [[ $w == \"*\" && ${#w} -ge 2 ]]; then
		w=${w:1:${#w}-2}
	elif [[ $w == \'* || $w == \"* ]]; then
		w=${w:1}
	else
		w=$(printf '%s' "$w" | sed 's/\\\(.\)/\1/g')
	fi
	printf '%s' "$w"
}

_wicket()
{
	COMPREPLY=()
	# Words from the line itself: COMP_WORDS splits at ':' and '=' too.
	local line=${COMP_LINE:0:COMP_POINT} cur=""
	local -a words
	read -ra words <<<"$line"
	if [[ $line != *[[:space:]] && ${#words[@]} -gt 0 ]]; then
		cur=${words[-1]}
		unset 'words[-1]'
	fi
	local raw=$cur k
	cur=$(_wicket_dequote "$cur")
	for k in "${!words[@]}"; do
		[[ ${words[k]} == *[\'\"\\]* ]] && words[k]=$(_wicket_dequote "${words[k]}")
	done
	local _wicket_bin=${words[0]:-wicket}
	_wicket_bin=${_wicket_bin/#\~/$HOME}
	local -A gopt=() copt=()
	_wicket_load_opts gopt "$_wicket_bin"
	local _wicket_uri="" _wicket_ctx="" _wicket_proxy="" cmd="" argfor="" w t ddash=0
	local -a _wicket_gargs=() pos=() names=()
	local i
	for ((i = 1; i < ${#words[@]}; i++)); do
		w=${words[i]}
		if ((ddash)) || [[ $cmd == exec && ${#pos[@]} -gt 0 ]]; then
			pos+=("$w")
			continue
		fi
		if [[ $cmd && $w == -- ]]; then
			ddash=1
			continue
		fi
		if [[ $w == -?* ]]; then
			t=${gopt[${w%%=*}]}
			if [[ $t ]]; then
				_wicket_gargs+=("$w")
				[[ $w == --connect=* ]] && _wicket_uri=${w#*=}
				[[ $w == --context=* ]] && _wicket_ctx=${w#*=}
				[[ $w == --proxy-command=* ]] && _wicket_proxy=1
				if [[ $t == 1 && $w != *=* ]]; then
					if ((i + 1 >= ${#words[@]})); then
						argfor=$w
						break
					fi
					((i++))
					_wicket_gargs+=("${words[i]}")
					[[ $w == -c || $w == --connect ]] && _wicket_uri=${words[i]}
					[[ $w == --context ]] && _wicket_ctx=${words[i]}
					[[ $w == --proxy-command ]] && _wicket_proxy=1
				fi
				continue
			fi
			t=${copt[${w%%=*}]}
			if [[ $t == 1 && $w != *=* ]]; then
				if ((i + 1 >= ${#words[@]})); then
					argfor=$w
					break
				fi
				((i++))
			fi
			continue
		fi
		if [[ -z $cmd ]]; then
			cmd=$w
			_wicket_load_opts copt "$_wicket_bin" "$cmd"
		else
			pos+=("$w")
		fi
	done

	if [[ $argfor ]]; then
		case $argfor in
		--packet-log | --host-key | --authorized-keys | --token-file)
			_wicket_paths "" "$cur" ""
			;;
		--tools-path)
			mapfile -t names < <(compgen -d -- "$cur")
			for w in "${names[@]}"; do _wicket_add "$w/"; done
			;;
		--share) mapfile -t COMPREPLY < <(compgen -W "auto no only" -- "$cur") ;;
		--persist) mapfile -t COMPREPLY < <(compgen -W "forever" -- "$cur") ;;
		-e) mapfile -t COMPREPLY < <(compgen -W "none" -- "$cur") ;;
		-c | --connect)
			mapfile -t COMPREPLY < <(compgen -W "qemu:///system qemu:///session" -- "$cur")
			;;
		esac
	elif [[ $cur == -* && $ddash == 0 && ! ($cmd == exec && ${#pos[@]} -gt 0) ]]; then
		local -a all=("${!gopt[@]}")
		[[ $cmd ]] && all+=("${!copt[@]}")
		mapfile -t COMPREPLY < <(compgen -W "${all[*]}" -- "$cur")
	elif [[ -z $cmd ]]; then
		mapfile -t COMPREPLY < <(compgen -W "exec shell cp forward proxy serve ssh-config list mux help" -- "$cur")
	else
		case $cmd in
		exec | shell | proxy | serve | forward)
			((${#pos[@]} == 0)) && _wicket_targets "$cur" ""
			;;
		mux)
			if ((${#pos[@]} == 0)); then
				mapfile -t COMPREPLY < <(compgen -W "status stop start" -- "$cur")
			elif ((${#pos[@]} == 1)); then
				_wicket_targets "$cur" ""
			fi
			;;
		cp) _wicket_cp_operand "$cur" ;;
		help)
			((${#pos[@]} == 0)) &&
				mapfile -t COMPREPLY < <(compgen -W "exec shell cp forward proxy serve ssh-config list mux" -- "$cur")
			;;
		esac
	fi
	# bash replaces only the part of the word after the last break character
	# (':' and '=' by default): drop what comes before it.
	local breaks=${COMP_WORDBREAKS-:=} pre="" c
	for ((k = ${#raw} - 1; k >= 0; k--)); do
		c=${raw:k:1}
		if [[ $breaks == *"$c"* ]]; then
			pre=${raw:0:k+1}
			break
		fi
	done
	if [[ $pre ]]; then
		local qpre
		printf -v qpre '%q' "$pre"
		for k in "${!COMPREPLY[@]}"; do
			COMPREPLY[k]=${COMPREPLY[k]#"$qpre"}
			COMPREPLY[k]=${COMPREPLY[k]#"$pre"}
		done
	fi
	return 0
}
complete -F _wicket wicket
