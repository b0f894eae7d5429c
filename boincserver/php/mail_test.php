<?php
// `boincserver mail test ADDRESS`: one message through BOINC's own send_email()
// (html/inc/email.inc), as the project's web pages send theirs. Fed on standard input to
// `php -- ADDRESS` in the apache service, as the BOINC user in PROJECT_ROOT. Prints one JSON
// object: sent, the mailer email.inc chose, what send_email() printed (PHPMailer's ErrorInfo)
// and the SMTP server's answers (boinc/mail.py's make_php_mailer() keeps only those).
$to = $argv[1];
chdir(getcwd() . "/html/user");
ob_start();
require_once("../inc/email.inc");
ob_end_clean();
$GLOBALS['boincserver_mail_transcript'] = array();
$user = new StdClass;
$user->email_addr = $to;
$user->name = $to;
$mailer = function_exists('make_php_mailer') ? 'phpmailer'
    : (defined('EMAIL_USE_CMD') ? 'mail command' : 'php mail()');
$body = "This message was sent by `boincserver mail test` through the project's own mail path\n"
    . "(BOINC's send_email() in html/inc/email.inc), as its web pages send password resets.\n\n"
    . URL_BASE . "\n";
ob_start();
$sent = send_email($user, PROJECT . " mail test", $body);
$printed = trim(ob_get_clean());
echo json_encode(array(
    "sent" => (bool)$sent,
    "mailer" => $mailer,
    "error" => $printed,
    "transcript" => $GLOBALS['boincserver_mail_transcript'],
)), "\n";
