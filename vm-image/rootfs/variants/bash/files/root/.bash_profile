# bash login shells read this instead of ~/.profile.
[ -r ~/.bashrc ] && . ~/.bashrc
