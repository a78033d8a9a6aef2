# contrib: quick start, packaging helpers, and what `make install` puts
# beside the programs (docs/operations.md lists every installed path).
EXTRA_DIST += contrib/quickstart.sh

# Operator's guide.
dist_doc_DATA += docs/operations.md

# Manual pages.
dist_man_MANS = contrib/man/quorumd.8 contrib/man/quorumctl.1 contrib/man/quorumfs.8

# Bash completion of quorumctl, installed under the command's name (the
# name bash-completion looks up on first use).
bashcompdir = $(datadir)/bash-completion/completions
EXTRA_DIST += contrib/completion/quorumctl.bash
install-data-local: install-bashcomp
uninstall-local: uninstall-bashcomp
install-bashcomp:
	$(MKDIR_P) '$(DESTDIR)$(bashcompdir)'
	$(INSTALL_DATA) $(srcdir)/contrib/completion/quorumctl.bash '$(DESTDIR)$(bashcompdir)/quorumctl'
uninstall-bashcomp:
	rm -f '$(DESTDIR)$(bashcompdir)/quorumctl'
.PHONY: install-bashcomp uninstall-bashcomp

# Example configuration files.
examplesdir = $(datadir)/quorumfs/examples
examples_DATA = contrib/quorumd.conf.example contrib/quorumfs.conf.example \
	contrib/fstab.example
EXTRA_DIST += contrib/quorumfs.conf.example contrib/fstab.example

# systemd units. They are installed as examples under
# $(datadir)/quorumfs/systemd (not into systemd's own directory, which
# does not follow --prefix); copy or link them to /etc/systemd/system.
# The services name the programs by their installed path ($(bindir)).
systemdexampledir = $(datadir)/quorumfs/systemd
systemdexample_DATA = contrib/systemd/quorumd.service \
	contrib/systemd/quorumfs@.service contrib/systemd/srv-q.mount
EXTRA_DIST += contrib/systemd/quorumd.service.in \
	contrib/systemd/quorumfs@.service.in contrib/systemd/srv-q.mount
CLEANFILES += contrib/systemd/quorumd.service contrib/systemd/quorumfs@.service
contrib/systemd/quorumd.service: $(srcdir)/contrib/systemd/quorumd.service.in Makefile
	$(MKDIR_P) contrib/systemd
	sed -e 's|@bindir[@]|$(bindir)|g' $(srcdir)/contrib/systemd/quorumd.service.in > $@.tmp
	mv $@.tmp $@
contrib/systemd/quorumfs@.service: $(srcdir)/contrib/systemd/quorumfs@.service.in Makefile
	$(MKDIR_P) contrib/systemd
	sed -e 's|@bindir[@]|$(bindir)|g' $(srcdir)/contrib/systemd/quorumfs@.service.in > $@.tmp
	mv $@.tmp $@
