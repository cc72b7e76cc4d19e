# Interactive bash set-up for root.
case $- in
*i*) ;;
*) return ;;
esac

HISTCONTROL=ignoreboth
shopt -s checkwinsize

# Green user@host, blue directory, as Debian's skeleton .bashrc does for
# colour terminals. The \[ \] pairs tell readline these bytes take no room.
PS1='\[\e[01;32m\]\u@\h\[\e[00m\]:\[\e[01;34m\]\w\[\e[00m\]\$ '
