import nodemailer from 'nodemailer';
import type { SmtpConfig } from './auth.config.js';
import { FileCredential } from '../secrets/file-credential.js';

/** Outbound mail: one plain-text message to one address. */
export interface Mailer {
  send(message: { to: string; subject: string; text: string }): Promise<void>;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * Mail through the configured SMTP server. The password is read from its file at each send,
 * so replacing the file takes effect without a restart. Plain smtp:// must upgrade with
 * STARTTLS unless the server is on loopback: tokens and credentials never cross in clear.
 */
export function createSmtpMailer(config: SmtpConfig): Mailer {
  const url = new URL(config.url);
  const password =
    config.passwordFile === undefined ? undefined : new FileCredential(config.passwordFile);
  const isSecure = url.protocol === 'smtps:';
  const port = url.port === '' ? (isSecure ? 465 : 587) : Number(url.port);
  const user = decodeURIComponent(url.username);

  return {
    async send(message) {
      const transport = nodemailer.createTransport({
        host: url.hostname,
        port,
        secure: isSecure,
        requireTLS: !isSecure && !LOOPBACK_HOSTS.has(url.hostname),
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 20_000,
        ...(user === '' ? {} : { auth: { user, pass: password?.read() ?? '' } }),
      });
      try {
        await transport.sendMail({ from: config.from, ...message });
      } finally {
        transport.close();
      }
    },
  };
}
