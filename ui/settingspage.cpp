#include "settingspage.h"

#include "accesspolicy.h"

#include "autostartmanager.h"
#include "messagerewriter.h"
#include "proxycredentials.h"
#include "proxyservice.h"
#include "settingsregistry.h"
#include "uilogging.h"

#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPushButton>
#include <QScrollArea>
#include <QSpinBox>
#include <QVBoxLayout>
#include <QWheelEvent>

namespace keyrelay {

namespace {
constexpr int PreviewMessages = 8;

/// Spin boxes and combo boxes take the wheel only once they have the focus: scrolling the page over them
/// scrolls the page instead of changing their value. The ignored event goes on to the scroll area.
class WheelGuard : public QObject
{
public:
    using QObject::QObject;

protected:
    bool eventFilter(QObject *watched, QEvent *event) override
    {
        if (event->type() == QEvent::Wheel) {
            auto *widget = qobject_cast<QWidget *>(watched);
            if (widget && !widget->hasFocus()) {
                event->ignore();
                return true;
            }
        }
        return QObject::eventFilter(watched, event);
    }
};

QSpinBox *makeSpin(QWidget *parent, int low, int high)
{
    auto *spin = new QSpinBox(parent);
    spin->setRange(low, high);
    return spin;
}
} // namespace

SettingsPage::SettingsPage(SettingsRegistry *settings, ProxyService *service, AutostartManager *autostart,
                           QWidget *parent)
    : QWidget(parent), m_settings(settings), m_service(service), m_autostart(autostart)
{
    auto *content = new QWidget;

    // Local endpoint.
    auto *listenBox = new QGroupBox(tr("Local endpoint"), content);
    m_listenHost = new QLineEdit(listenBox);
    m_listenHost->setToolTip(tr("127.0.0.1 keeps the proxy reachable from this computer only"));
    m_listenPort = makeSpin(listenBox, 0, 65535);
    m_listenPort->setSpecialValueText(tr("any free port"));
    auto *listenRow = new QHBoxLayout;
    listenRow->addWidget(m_listenHost, 1);
    listenRow->addWidget(new QLabel(tr("Port:"), listenBox));
    listenRow->addWidget(m_listenPort);
    auto *listenForm = new QFormLayout(listenBox);
    listenForm->addRow(tr("Listen address:"), listenRow);

    // Upstream.
    auto *upstreamBox = new QGroupBox(tr("Upstream"), content);
    m_upstream = new QLineEdit(upstreamBox);
    m_upstream->setPlaceholderText(QStringLiteral("https://api.openai.com"));
    m_proxyType = new QComboBox(upstreamBox);
    m_proxyType->addItem(tr("No proxy"));
    m_proxyType->addItem(tr("System proxy settings"));
    m_proxyType->addItem(tr("HTTP proxy"));
    m_proxyType->addItem(tr("SOCKS5 proxy"));
    m_proxyHost = new QLineEdit(upstreamBox);
    m_proxyHost->setPlaceholderText(tr("host"));
    m_proxyPort = makeSpin(upstreamBox, 1, 65535);
    m_proxyPort->setValue(8080);
    m_proxyUser = new QLineEdit(upstreamBox);
    m_proxyUser->setPlaceholderText(tr("user (optional)"));
    m_proxyPassword = new QLineEdit(upstreamBox);
    m_proxyPassword->setPlaceholderText(tr("password (optional)"));
    m_proxyPassword->setEchoMode(QLineEdit::Password);
    auto *proxyRow = new QHBoxLayout;
    proxyRow->addWidget(m_proxyType);
    proxyRow->addWidget(m_proxyHost, 1);
    proxyRow->addWidget(m_proxyPort);
    auto *proxyAuthRow = new QHBoxLayout;
    proxyAuthRow->addWidget(m_proxyUser, 1);
    proxyAuthRow->addWidget(m_proxyPassword, 1);
    m_stripPrefixes = new QLineEdit(upstreamBox);
    m_stripPrefixes->setPlaceholderText(tr("e.g. /release, /openai"));
    m_connectTimeout = makeSpin(upstreamBox, 1, 3600);
    m_connectTimeout->setSuffix(tr(" s"));
    m_idleTimeout = makeSpin(upstreamBox, 1, 86400);
    m_idleTimeout->setSuffix(tr(" s"));
    auto *timeoutRow = new QHBoxLayout;
    timeoutRow->addWidget(new QLabel(tr("Connect:"), upstreamBox));
    timeoutRow->addWidget(m_connectTimeout);
    timeoutRow->addSpacing(12);
    timeoutRow->addWidget(new QLabel(tr("Idle:"), upstreamBox));
    timeoutRow->addWidget(m_idleTimeout);
    timeoutRow->addStretch();
    auto *upstreamForm = new QFormLayout(upstreamBox);
    upstreamForm->addRow(tr("Base URL:"), m_upstream);
    upstreamForm->addRow(tr("Network proxy:"), proxyRow);
    upstreamForm->addRow(QString(), proxyAuthRow);
    upstreamForm->addRow(tr("Strip path prefixes:"), m_stripPrefixes);
    upstreamForm->addRow(tr("Timeouts:"), timeoutRow);

    // Message rewrite.
    auto *rewriteBox = new QGroupBox(tr("Long conversations"), content);
    m_reorder
        = new QCheckBox(tr("Move the system message close to the end of long conversations"), rewriteBox);
    m_threshold = makeSpin(rewriteBox, 1, 1000);
    m_depth = makeSpin(rewriteBox, 1, 1000);
    auto *rewriteRow = new QHBoxLayout;
    rewriteRow->addWidget(new QLabel(tr("When there are more than"), rewriteBox));
    rewriteRow->addWidget(m_threshold);
    rewriteRow->addWidget(new QLabel(tr("messages, keep"), rewriteBox));
    rewriteRow->addWidget(m_depth);
    rewriteRow->addWidget(new QLabel(tr("messages after it"), rewriteBox));
    rewriteRow->addStretch();
    m_previewBefore = new QLabel(rewriteBox);
    m_previewAfter = new QLabel(rewriteBox);
    m_previewBefore->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_previewAfter->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto *note
        = new QLabel(tr("Note: moving the system message defeats the upstream's prompt caching of long "
                        "conversations."),
                     rewriteBox);
    note->setWordWrap(true);
    QPalette hint = note->palette();
    hint.setColor(QPalette::WindowText, hint.color(QPalette::PlaceholderText));
    note->setPalette(hint);
    auto *rewriteForm = new QFormLayout(rewriteBox);
    rewriteForm->addRow(m_reorder);
    rewriteForm->addRow(rewriteRow);
    rewriteForm->addRow(tr("Before:"), m_previewBefore);
    rewriteForm->addRow(tr("After:"), m_previewAfter);
    rewriteForm->addRow(note);

    // Keys and usage.
    auto *keysBox = new QGroupBox(tr("Keys and usage"), content);
    m_recheckInvalid = makeSpin(keysBox, 1, 365 * 86400);
    m_recheckInvalid->setSuffix(tr(" s"));
    m_maxPerKey = makeSpin(keysBox, 0, 100000);
    m_maxPerKey->setSpecialValueText(tr("no limit"));
    m_streamUsage = new QCheckBox(tr("Count the tokens of streamed answers (asks the upstream for them; the "
                                     "client's stream stays as it asked)"),
                                  keysBox);
    auto *keysForm = new QFormLayout(keysBox);
    keysForm->addRow(tr("Re-check an invalid key every:"), m_recheckInvalid);
    keysForm->addRow(tr("Requests per key at once:"), m_maxPerKey);
    keysForm->addRow(m_streamUsage);

    // Security: which browser pages and which clients may use the keys.
    auto *securityBox = new QGroupBox(tr("Security"), content);
    m_allowedOrigins = new QLineEdit(securityBox);
    m_allowedOrigins->setPlaceholderText(QStringLiteral("https://bettergpt.chat, https://*.example.org"));
    m_allowedOrigins->setToolTip(
        tr("Websites (origins) that may use KeyRelay from your browser, separated by "
           "commas. Pages on this computer (localhost), browser extensions and desktop "
           "apps are always allowed."));
    auto *originsNote
        = new QLabel(tr("Pages on this computer (localhost), browser extensions and desktop apps "
                        "are always allowed. A blocked website shows in the log, where one click "
                        "allows it."),
                     securityBox);
    originsNote->setWordWrap(true);
    m_allowAnyWebsite = new QCheckBox(tr("Allow any website (not recommended)"), securityBox);
    m_allowAnyWarning
        = new QLabel(tr("Warning: every website open in your browser could then use your API keys "
                        "and spend your money."),
                     securityBox);
    m_allowAnyWarning->setWordWrap(true);
    m_allowAnyWarning->setStyleSheet(QStringLiteral("color: #c02020; font-weight: bold;"));
    m_clientToken = new QLineEdit(securityBox);
    m_clientToken->setPlaceholderText(tr("none: any program on this computer may use KeyRelay"));
    m_clientToken->setToolTip(tr("When set, clients must send this token as their API key. Required for "
                                 "listening on a network address or behind a reverse proxy."));
    m_generateToken = new QPushButton(tr("&Generate"), securityBox);
    m_copyToken = new QPushButton(tr("Cop&y"), securityBox);
    auto *tokenRow = new QHBoxLayout;
    tokenRow->addWidget(m_clientToken, 1);
    tokenRow->addWidget(m_generateToken);
    tokenRow->addWidget(m_copyToken);
    m_allowedHosts = new QLineEdit(securityBox);
    m_allowedHosts->setPlaceholderText(QStringLiteral("api.example.com"));
    m_allowedHosts->setToolTip(
        tr("Host names a reverse proxy sends (besides localhost); needs a client token."));
    auto *securityForm = new QFormLayout(securityBox);
    securityForm->addRow(tr("Allowed websites:"), m_allowedOrigins);
    securityForm->addRow(QString(), originsNote);
    securityForm->addRow(m_allowAnyWebsite);
    securityForm->addRow(m_allowAnyWarning);
    securityForm->addRow(tr("Client access token:"), tokenRow);
    securityForm->addRow(tr("Reverse-proxy host names:"), m_allowedHosts);
    connect(m_allowAnyWebsite, &QCheckBox::toggled, m_allowAnyWarning, &QWidget::setVisible);
    connect(m_generateToken, &QPushButton::clicked, this,
            [this] { m_clientToken->setText(AccessPolicy::generateToken()); });
    connect(m_copyToken, &QPushButton::clicked, this, [this] {
        if (!m_clientToken->text().trimmed().isEmpty())
            QGuiApplication::clipboard()->setText(m_clientToken->text().trimmed());
    });

    // Desktop.
    auto *desktopBox = new QGroupBox(tr("Desktop"), content);
    m_startMinimized = new QCheckBox(tr("Start minimized to the tray"), desktopBox);
    m_startAtLogin = new QCheckBox(tr("Start KeyRelay when I log in"), desktopBox);
    auto *desktopLayout = new QVBoxLayout(desktopBox);
    desktopLayout->addWidget(m_startMinimized);
    desktopLayout->addWidget(m_startAtLogin);
    if (!m_autostart)
        m_startAtLogin->hide();

    auto *contentLayout = new QVBoxLayout(content);
    contentLayout->addWidget(listenBox);
    contentLayout->addWidget(upstreamBox);
    contentLayout->addWidget(rewriteBox);
    contentLayout->addWidget(keysBox);
    contentLayout->addWidget(securityBox);
    contentLayout->addWidget(desktopBox);
    contentLayout->addStretch();

    auto *scroll = new QScrollArea(this);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setWidget(content);
    // Let the tab page's background show through, as on the other pages.
    scroll->viewport()->setAutoFillBackground(false);
    content->setAutoFillBackground(false);

    m_bar = new ApplyBar(tr("&Apply"), this);
    connect(m_bar, &ApplyBar::applyRequested, this, &SettingsPage::apply);
    connect(m_bar, &ApplyBar::revertRequested, this, &SettingsPage::revert);

    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(scroll, 1);
    auto *buttonMargins = new QVBoxLayout;
    buttonMargins->setContentsMargins(9, 0, 9, 9);
    buttonMargins->addWidget(m_bar);
    layout->addLayout(buttonMargins);

    connect(m_proxyType, &QComboBox::currentIndexChanged, this, &SettingsPage::updateProxyFields);
    connect(m_reorder, &QCheckBox::toggled, this, &SettingsPage::updatePreview);
    connect(m_threshold, &QSpinBox::valueChanged, this, &SettingsPage::updatePreview);
    connect(m_depth, &QSpinBox::valueChanged, this, &SettingsPage::updatePreview);

    setUpFields();
    revert();
}

void SettingsPage::setUpFields()
{
    m_fields = { m_listenHost,    m_listenPort,  m_upstream,       m_proxyType,       m_proxyHost,
                 m_proxyPort,     m_proxyUser,   m_proxyPassword,  m_stripPrefixes,   m_connectTimeout,
                 m_idleTimeout,   m_reorder,     m_threshold,      m_depth,           m_recheckInvalid,
                 m_maxPerKey,     m_streamUsage, m_allowedOrigins, m_allowAnyWebsite, m_clientToken,
                 m_generateToken, m_copyToken,   m_allowedHosts,   m_startMinimized,  m_startAtLogin };

    // Inputs in a row of their own have their form label as accessible name; these share a row.
    m_listenHost->setAccessibleName(tr("Listen address"));
    m_listenPort->setAccessibleName(tr("Listen port"));
    m_proxyType->setAccessibleName(tr("Network proxy"));
    m_proxyHost->setAccessibleName(tr("Network proxy host"));
    m_proxyPort->setAccessibleName(tr("Network proxy port"));
    m_proxyUser->setAccessibleName(tr("Network proxy user"));
    m_proxyPassword->setAccessibleName(tr("Network proxy password"));
    m_connectTimeout->setAccessibleName(tr("Connect timeout"));
    m_idleTimeout->setAccessibleName(tr("Idle timeout"));
    m_threshold->setAccessibleName(tr("Move the system message when there are more messages than"));
    m_depth->setAccessibleName(tr("Messages to keep after the system message"));
    m_clientToken->setAccessibleName(tr("Client access token"));
    m_clientToken->setAccessibleDescription(m_clientToken->toolTip());
    m_allowedOrigins->setAccessibleDescription(m_allowedOrigins->toolTip());
    m_allowedHosts->setAccessibleDescription(m_allowedHosts->toolTip());
    m_listenHost->setAccessibleDescription(m_listenHost->toolTip());

    auto *wheelGuard = new WheelGuard(this);
    QWidget *previous = nullptr;
    for (QWidget *field : std::as_const(m_fields)) {
        if (qobject_cast<QAbstractSpinBox *>(field) || qobject_cast<QComboBox *>(field)) {
            field->setFocusPolicy(Qt::StrongFocus);
            field->installEventFilter(wheelGuard);
        }
        if (previous)
            setTabOrder(previous, field);
        previous = field;
        if (auto *edit = qobject_cast<QLineEdit *>(field))
            connect(edit, &QLineEdit::textChanged, this, &SettingsPage::updatePending);
        else if (auto *spin = qobject_cast<QSpinBox *>(field))
            connect(spin, &QSpinBox::valueChanged, this, &SettingsPage::updatePending);
        else if (auto *combo = qobject_cast<QComboBox *>(field))
            connect(combo, &QComboBox::currentIndexChanged, this, &SettingsPage::updatePending);
        else if (auto *check = qobject_cast<QCheckBox *>(field))
            connect(check, &QCheckBox::toggled, this, &SettingsPage::updatePending);
    }
    setTabOrder(previous, m_bar->revertButton());
    setTabOrder(m_bar->revertButton(), m_bar->applyButton());
}

QVariantList SettingsPage::formValues() const
{
    QVariantList values;
    for (QWidget *field : m_fields) {
        if (auto *edit = qobject_cast<QLineEdit *>(field))
            values << edit->text();
        else if (auto *spin = qobject_cast<QSpinBox *>(field))
            values << spin->value();
        else if (auto *combo = qobject_cast<QComboBox *>(field))
            values << combo->currentIndex();
        else if (auto *check = qobject_cast<QCheckBox *>(field))
            values << check->isChecked();
        else
            values << QVariant(); // a button
    }
    return values;
}

void SettingsPage::markClean()
{
    m_cleanValues = formValues();
    updatePending();
}

void SettingsPage::updatePending()
{
    if (m_loading)
        return;
    m_bar->setPending(formValues() != m_cleanValues);
}

QString SettingsPage::pendingText() const
{
    return m_bar->pendingText();
}

QString SettingsPage::messageText() const
{
    return m_bar->messageText();
}

bool SettingsPage::confirmDiscardOrApply(QWidget *parent)
{
    return m_bar->confirmDiscardOrApply(parent, tr("The settings have changes that are not applied."), QStringLiteral("pendingSettingsPrompt"));
}

void SettingsPage::setProxyCredentials(ProxyCredentials *credentials)
{
    m_credentials = credentials;
    revert();
}

void SettingsPage::revert()
{
    m_loading = true;
    ProxyConfig config = m_settings->proxyConfig();
    if (m_credentials)
        m_credentials->complete(&config);
    m_listenHost->setText(config.listenHost);
    m_listenPort->setValue(config.listenPort);
    m_upstream->setText(config.upstream.toString());

    const QString proxy = config.upstreamProxy.trimmed();
    m_proxyHost->clear();
    m_proxyUser->clear();
    m_proxyPassword->clear();
    if (proxy.isEmpty() || proxy.compare(QLatin1String("none"), Qt::CaseInsensitive) == 0) {
        m_proxyType->setCurrentIndex(ProxyNone);
    } else if (proxy.compare(QLatin1String("system"), Qt::CaseInsensitive) == 0) {
        m_proxyType->setCurrentIndex(ProxySystem);
    } else {
        const QUrl url(proxy);
        m_proxyType->setCurrentIndex(
            url.scheme().startsWith(QLatin1String("socks"), Qt::CaseInsensitive) ? ProxySocks5 : ProxyHttp);
        m_proxyHost->setText(url.host());
        m_proxyPort->setValue(url.port(m_proxyType->currentIndex() == ProxySocks5 ? 1080 : 8080));
        m_proxyUser->setText(url.userName(QUrl::FullyDecoded));
        m_proxyPassword->setText(url.password(QUrl::FullyDecoded));
    }
    m_reorder->setChecked(config.reorderEnabled);
    m_recheckInvalid->setValue(config.recheckInvalidSec);
    m_maxPerKey->setValue(config.maxConcurrentPerKey);
    m_streamUsage->setChecked(config.requestStreamUsage);
    m_threshold->setValue(config.reorderThreshold);
    m_depth->setValue(config.reorderDepth);
    m_stripPrefixes->setText(config.stripPrefixes.join(QStringLiteral(", ")));
    m_connectTimeout->setValue(config.connectTimeoutSec);
    m_idleTimeout->setValue(config.idleTimeoutSec);
    m_allowedOrigins->setText(config.allowedOrigins.join(QStringLiteral(", ")));
    m_allowAnyWebsite->setChecked(config.allowAnyWebsite);
    m_allowAnyWarning->setVisible(config.allowAnyWebsite);
    m_clientToken->setText(config.clientToken);
    m_allowedHosts->setText(config.allowedHosts.join(QStringLiteral(", ")));
    m_startMinimized->setChecked(m_settings->value(Setting::StartMinimized).toBool());
    m_startAtLogin->setChecked(m_autostart ? m_autostart->isEnabled()
                                           : m_settings->value(Setting::StartAtLogin).toBool());
    updateProxyFields();
    updatePreview();
    m_loading = false;
    markClean();
}

void SettingsPage::updateProxyFields()
{
    const bool manual
        = m_proxyType->currentIndex() == ProxyHttp || m_proxyType->currentIndex() == ProxySocks5;
    for (QWidget *widget : { static_cast<QWidget *>(m_proxyHost), static_cast<QWidget *>(m_proxyPort),
                             static_cast<QWidget *>(m_proxyUser), static_cast<QWidget *>(m_proxyPassword) })
        widget->setEnabled(manual);
}

QString SettingsPage::composedUpstreamProxy() const
{
    switch (m_proxyType->currentIndex()) {
    case ProxySystem:
        return QStringLiteral("system");
    case ProxyHttp:
    case ProxySocks5: {
        const QString host = m_proxyHost->text().trimmed();
        if (host.isEmpty())
            return QString();
        QString text = m_proxyType->currentIndex() == ProxyHttp ? QStringLiteral("http://")
                                                                : QStringLiteral("socks5://");
        const QString user = m_proxyUser->text();
        if (!user.isEmpty()) {
            text += QString::fromLatin1(QUrl::toPercentEncoding(user));
            if (!m_proxyPassword->text().isEmpty())
                text += QLatin1Char(':')
                    + QString::fromLatin1(QUrl::toPercentEncoding(m_proxyPassword->text()));
            text += QLatin1Char('@');
        }
        text += host.contains(QLatin1Char(':')) && !host.startsWith(QLatin1Char('['))
            ? QLatin1Char('[') + host + QLatin1Char(']')
            : host;
        text += QLatin1Char(':') + QString::number(m_proxyPort->value());
        return text;
    }
    default:
        return QString();
    }
}

bool SettingsPage::formToConfig(ProxyConfig *config, QString *error) const
{
    *config = m_settings->proxyConfig();
    config->listenHost = m_listenHost->text().trimmed();
    config->listenPort = quint16(m_listenPort->value());
    QUrl upstream;
    QString parseError;
    if (!ProxyConfig::parseUpstream(m_upstream->text().trimmed(), &upstream, &parseError)) {
        *error = tr("Upstream base URL: %1").arg(parseError);
        return false;
    }
    config->upstream = upstream;
    if ((m_proxyType->currentIndex() == ProxyHttp || m_proxyType->currentIndex() == ProxySocks5)
        && m_proxyHost->text().trimmed().isEmpty()) {
        *error = tr("Enter the network proxy's host name.");
        return false;
    }
    config->upstreamProxy = composedUpstreamProxy();
    config->reorderEnabled = m_reorder->isChecked();
    config->recheckInvalidSec = m_recheckInvalid->value();
    config->maxConcurrentPerKey = m_maxPerKey->value();
    config->requestStreamUsage = m_streamUsage->isChecked();
    config->reorderThreshold = m_threshold->value();
    config->reorderDepth = m_depth->value();
    ProxyConfig::normalizePathPrefixes(m_stripPrefixes->text().split(QLatin1Char(','), Qt::SkipEmptyParts),
                                       true, &config->stripPrefixes);
    config->connectTimeoutSec = m_connectTimeout->value();
    config->idleTimeoutSec = m_idleTimeout->value();
    const auto splitList = [](const QString &text) {
        QStringList entries;
        const QStringList parts = text.split(QLatin1Char(','), Qt::SkipEmptyParts);
        for (const QString &part : parts) {
            if (!part.trimmed().isEmpty() && !entries.contains(part.trimmed()))
                entries.append(part.trimmed());
        }
        return entries;
    };
    config->allowedOrigins = splitList(m_allowedOrigins->text());
    config->allowAnyWebsite = m_allowAnyWebsite->isChecked();
    config->clientToken = m_clientToken->text().trimmed();
    config->allowedHosts = splitList(m_allowedHosts->text());
    QVariant token = config->clientToken;
    if (!SettingsRegistry::spec(Setting::ClientToken).validate(token)) {
        *error = tr("The client access token must be at least 16 characters without spaces (use Generate).");
        return false;
    }
    const QStringList problems = config->validate();
    if (!problems.isEmpty()) {
        *error = problems.join(QStringLiteral("; "));
        return false;
    }
    return true;
}

bool SettingsPage::apply()
{
    ProxyConfig config;
    QString error;
    if (!formToConfig(&config, &error)) {
        setMessage(error, true);
        Q_EMIT applyFailed(error);
        return false;
    }
    QStringList warnings;
    ProxyConfig stored = config;
    if (m_credentials) {
        // The settings file gets the proxy URL without its password; the password goes to the store.
        QString secretError;
        if (!m_credentials->remember(config.upstreamProxy, &stored.upstreamProxy, &secretError))
            warnings << tr("The proxy password could not be stored (%1); it is used until KeyRelay quits.")
                            .arg(secretError);
    }
    m_settings->setProxyConfig(stored);
    m_settings->setValue(Setting::StartMinimized, m_startMinimized->isChecked());
    m_settings->setValue(Setting::StartAtLogin, m_startAtLogin->isChecked());
    if (m_autostart && m_autostart->isEnabled() != m_startAtLogin->isChecked()) {
        QString autostartError;
        if (!m_autostart->setEnabled(m_startAtLogin->isChecked(), &autostartError))
            warnings << autostartError;
    }
    if (!m_settings->sync())
        warnings << tr("The settings file %1 could not be written.").arg(m_settings->fileName());
    markClean(); // stored: what the form shows is no longer pending

    QString serviceError;
    const bool wasRunning = m_service->state() == ProxyService::State::Running;
    if (!m_service->applyConfig(config, &serviceError)) {
        if (wasRunning && m_service->state() == ProxyService::State::Running) {
            // Still serving on the old address: that is what the settings file keeps too.
            const ProxyConfig running = m_service->config();
            m_settings->setValue(Setting::ListenHost, running.listenHost);
            m_settings->setValue(Setting::ListenPort, int(running.listenPort));
            m_settings->setValue(Setting::AllowRemoteClients, running.allowRemoteClients);
            m_settings->sync();
            setMessage(tr("Not applied: %1").arg(serviceError), true);
            Q_EMIT applyFailed(serviceError);
            return false;
        }
        const QString message = tr("Settings saved, but the proxy could not start: %1").arg(serviceError);
        setMessage(message, true);
        Q_EMIT applyFailed(serviceError);
        return false;
    }
    if (warnings.isEmpty())
        setMessage(tr("Settings applied."), false);
    else
        setMessage(warnings.join(QLatin1Char(' ')), true);
    Q_EMIT applied();
    return true;
}

bool SettingsPage::allowWebsite(const QString &origin, QString *error)
{
    const QString entry = origin.trimmed();
    if (entry.isEmpty() || !AccessPolicy::isValidOriginEntry(entry)) {
        if (error)
            *error = tr("\"%1\" is not a website origin.").arg(entry);
        return false;
    }
    QStringList origins = m_settings->value(Setting::AllowedOrigins).toStringList();
    if (!origins.contains(entry, Qt::CaseInsensitive))
        origins.append(entry);
    m_settings->setValue(Setting::AllowedOrigins, origins);
    m_settings->sync();
    QString serviceError;
    if (!m_service->applyConfig(m_settings->proxyConfig(), &serviceError)) {
        if (error)
            *error = serviceError;
        return false;
    }
    // Only this field is stored: other edits on the page stay pending.
    m_allowedOrigins->setText(origins.join(QStringLiteral(", ")));
    const qsizetype field = m_fields.indexOf(m_allowedOrigins);
    if (field >= 0 && field < m_cleanValues.size())
        m_cleanValues[field] = m_allowedOrigins->text();
    updatePending();
    setMessage(tr("%1 may now use KeyRelay.").arg(entry), false);
    return true;
}

QString SettingsPage::errorText() const
{
    return m_bar->errorText();
}

void SettingsPage::setMessage(const QString &text, bool error)
{
    m_bar->setMessage(text, error);
}

QByteArray SettingsPage::sampleBody() const
{
    static const char *const roles[PreviewMessages]
        = { "system", "user", "assistant", "user", "assistant", "user", "assistant", "user" };
    QJsonArray messages;
    for (int i = 0; i < PreviewMessages; ++i) {
        QJsonObject message;
        message.insert(QLatin1String("role"), QLatin1String(roles[i]));
        message.insert(QLatin1String("content"), QStringLiteral("message %1").arg(i + 1));
        messages.append(message);
    }
    QJsonObject body;
    body.insert(QLatin1String("model"), QLatin1String("gpt-4o-mini"));
    body.insert(QLatin1String("messages"), messages);
    return QJsonDocument(body).toJson(QJsonDocument::Compact);
}

QString SettingsPage::rolesOf(const QByteArray &body)
{
    QStringList roles;
    const QJsonArray messages
        = QJsonDocument::fromJson(body).object().value(QLatin1String("messages")).toArray();
    for (const QJsonValue &message : messages)
        roles << message.toObject().value(QLatin1String("role")).toString();
    return roles.join(QStringLiteral(", "));
}

QString SettingsPage::previewBefore() const
{
    return rolesOf(sampleBody());
}

QString SettingsPage::previewAfter() const
{
    const QByteArray body = sampleBody();
    RewriteOptions options;
    options.enabled = m_reorder->isChecked();
    options.threshold = m_threshold->value();
    options.depth = m_depth->value();
    if (!options.enabled)
        return rolesOf(body);
    const MessageRewriter::Result result = MessageRewriter::rewrite(body, options);
    return rolesOf(result.outcome == MessageRewriter::Outcome::Rewritten ? result.body : body);
}

void SettingsPage::updatePreview()
{
    m_threshold->setEnabled(m_reorder->isChecked());
    m_depth->setEnabled(m_reorder->isChecked());
    const QString before = previewBefore();
    const QString after = previewAfter();
    m_previewBefore->setText(before);
    m_previewAfter->setText(after == before ? tr("%1 (unchanged)").arg(after) : after);
}

} // namespace keyrelay
