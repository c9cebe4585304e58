export const CTL_HELP = `nspawnctl [OPTIONS...] COMMAND ...

Send control commands to or query nspawnd, the machine registry.

Machine Commands:
  list                        List running machines
  status NAME...              Show machine details: process tree, addresses, OS, uptime, console
  show [NAME...]              Show properties of one or more machines
  start NAME...               Start container as a service of nspawnd
  login NAME                  Get a login prompt in a container (getty on a new pty)
  shell [[USER@]NAME [COMMAND...]]
                              Invoke a command (default: a shell) in a container; its exit status and
                              stdin/stdout/stderr pass straight through
  enable NAME...              Start the container when nspawnd starts
  disable NAME...             Do not start it then
  poweroff NAME...            Power off one or more containers
  reboot NAME...              Reboot one or more containers
  terminate NAME...           Terminate one or more machines
  kill NAME...                Send signal to processes of a machine
  copy-to NAME PATH [PATH]    Copy files from the host to a container
  copy-from NAME PATH [PATH]  Copy files from a container to the host
  bind NAME PATH [PATH]       Bind mount a path from the host into a container
  logs NAME [-f]              Show (and follow) the console output of a container nspawnd runs
  top                         CPU, memory and tasks per machine, refreshing
  web                         Print the address of nspawnd's web view, with its access token

System Commands:
  install-units [--root=DIR]  Install nspawn@.service, nspawnd.service and machines.target wiring for
                              this nspawn into DIR/etc/systemd/system (--force: replace an earlier one)

Image Commands:
  list-images                 Show available container images
  image-status [NAME...]      Show image details
  show-image [NAME...]        Show properties of image (or of the pool, without NAME)
  clone NAME NAME             Clone an image
  rename NAME NAME            Rename an image
  read-only NAME [BOOL]       Mark or unmark image read-only
  remove NAME...              Remove an image
  set-limit [NAME] BYTES      Set image or pool size limit (disk quota)
  clean                       Remove hidden (or all, with --all) images, and what
                              killed containers left behind

Image Transfer Commands:
  pull-tar URL [NAME]         Download a TAR container image
  pull-raw URL [NAME]         Download a RAW container or VM image (qcow2 is refused)
  import-tar FILE [NAME]      Import a local TAR container image
  import-raw FILE|- [NAME]    Import a local RAW container or VM image (- reads stdin; NAME needed)
  import-fs DIRECTORY [NAME]  Import a local directory container image
  export-tar NAME [FILE]      Export a TAR container image locally
  export-raw NAME [FILE]      Export a RAW container or VM image locally (- or none: stdout)
  list-transfers              Show list of transfers in progress
  cancel-transfer ID...       Cancel a transfer; nothing of it is left

Options:
  -h --help                   Show this help
     --version                Show package version
     --no-pager               Do not pipe output into a pager (nspawnctl never does)
     --no-legend              Do not show the headers and footers
  -o --output=MODE            json, json-pretty (list, list-images, status)
  -s --signal=SIGNAL          Which signal to send (kill)
     --kill-whom=WHOM         Whom to send signal to: leader or all
     --uid=USER               Specify user ID to invoke shell as
  -E --setenv=VAR=VALUE       Add an environment variable for shell
     --read-only              Create read-only bind mount, clone or imported image
     --mkdir                  Create directory before bind mounting, if missing
  -f --follow                 Follow the console log (logs)
     --root=DIR               Install the units under DIR (install-units, default /)
  -n --lines=N                Console lines to show (status, default 10)
     --verify=MODE            Verification mode for downloaded images (no, checksum,
                              signature; yes: checksum)
     --format=FORMAT          Compress exported image (uncompressed, xz, gzip, bzip2, zstd)
     --force                  Replace target file when copying, if necessary
  -a --all                    With clean: remove all unused images, not only hidden ones;
                              with show-image: show empty properties too
  -q --quiet                  Suppress output
     --no-ask-password        Do not ask for system passwords (nspawnctl never does)

Environment: NSPAWND_RUNTIME_DIR (where nspawnd's socket is, /run/nspawn).
`;
