#include "trayicon.h"

#include "servicestatus.h"
#include "uilogging.h"

#include <QAction>
#include <QMenu>

namespace keyrelay {

TrayIcon::TrayIcon(QObject *parent) : QObject(parent), m_tray(new QSystemTrayIcon(this)), m_menu(new QMenu)
{
    QAction *open = m_menu->addAction(tr("Open KeyRelay"));
    connect(open, &QAction::triggered, this, &TrayIcon::showWindowRequested);
    m_menu->addSeparator();
    m_startStop = m_menu->addAction(tr("Start proxy"));
    connect(m_startStop, &QAction::triggered, this, [this] {
        if (m_state == IndicatorState::Running || m_state == IndicatorState::Degraded)
            Q_EMIT stopRequested();
        else
            Q_EMIT startRequested();
    });
    m_copy = m_menu->addAction(tr("Copy endpoint URL"));
    connect(m_copy, &QAction::triggered, this, &TrayIcon::copyEndpointRequested);
    m_menu->addSeparator();
    QAction *quit = m_menu->addAction(tr("Quit KeyRelay"));
    connect(quit, &QAction::triggered, this, &TrayIcon::quitRequested);

    m_tray->setContextMenu(m_menu);
    m_tray->setIcon(icons::stateIcon(m_state));
    connect(m_tray, &QSystemTrayIcon::activated, this, [this](QSystemTrayIcon::ActivationReason reason) {
        if (reason == QSystemTrayIcon::Trigger || reason == QSystemTrayIcon::DoubleClick)
            Q_EMIT showWindowRequested();
    });
    connect(m_tray, &QSystemTrayIcon::messageClicked, this, &TrayIcon::showWindowRequested);

    m_retry.setSingleShot(true);
    connect(&m_retry, &QTimer::timeout, this, &TrayIcon::tryInstall);
    updateToolTip();
}

TrayIcon::~TrayIcon()
{
    delete m_menu;
}

void TrayIcon::install(int attempts, int intervalMs)
{
    m_attemptsLeft = qMax(1, attempts);
    m_retry.setInterval(intervalMs);
    tryInstall();
}

void TrayIcon::tryInstall()
{
    if (QSystemTrayIcon::isSystemTrayAvailable()) {
        m_tray->show();
        m_installed = true;
        qCInfo(lcTray) << "tray icon shown";
        Q_EMIT ready();
        return;
    }
    if (--m_attemptsLeft > 0) {
        qCInfo(lcTray) << "no system tray yet; retrying";
        m_retry.start();
        return;
    }
    qCWarning(lcTray) << "no system tray available; KeyRelay runs as a normal window";
    Q_EMIT unavailable();
}

void TrayIcon::bind(ServiceStatus *status)
{
    const auto update = [this, status] {
        IndicatorState state = IndicatorState::Stopped;
        switch (status->state()) {
        case ServiceStatus::State::Running:
            state = IndicatorState::Running;
            break;
        case ServiceStatus::State::Degraded:
            state = IndicatorState::Degraded;
            break;
        case ServiceStatus::State::Stopped:
            state = IndicatorState::Stopped;
            break;
        case ServiceStatus::State::Failed:
            state = IndicatorState::Error;
            break;
        }
        setState(state, status->endpoint(), status->detailText());
    };
    connect(status, &ServiceStatus::changed, this, update);
    connect(status, &ServiceStatus::requestsTodayChanged, this, &TrayIcon::setRequestCount);
    update();
    setRequestCount(status->requestsToday());
}

void TrayIcon::setState(IndicatorState state, const QString &endpointUrl, const QString &detail)
{
    m_state = state;
    m_endpoint = endpointUrl;
    m_detail = detail;
    m_tray->setIcon(icons::stateIcon(state));
    const bool running = state == IndicatorState::Running || state == IndicatorState::Degraded;
    m_startStop->setText(running ? tr("Stop proxy") : tr("Start proxy"));
    m_copy->setEnabled(running);
    updateToolTip();
}

void TrayIcon::setRequestCount(quint64 count)
{
    if (m_requests == count)
        return;
    m_requests = count;
    updateToolTip();
}

bool TrayIcon::notify(const QString &subject, const QString &title, const QString &message,
                      QSystemTrayIcon::MessageIcon icon)
{
    if (!m_installed || !m_limiter.allow(subject))
        return false;
    m_tray->showMessage(title, message, icon, 10000);
    return true;
}

void TrayIcon::updateToolTip()
{
    QString text;
    switch (m_state) {
    case IndicatorState::Running:
        text = tr("KeyRelay: running on %1").arg(m_endpoint);
        break;
    case IndicatorState::Degraded:
        text = tr("KeyRelay: running on %1, with problems").arg(m_endpoint);
        break;
    case IndicatorState::Stopped:
        text = tr("KeyRelay: stopped");
        break;
    case IndicatorState::Error:
        text = tr("KeyRelay: not running");
        break;
    }
    if (!m_detail.isEmpty() && m_state != IndicatorState::Stopped)
        text += QLatin1Char('\n') + m_detail;
    text += QLatin1Char('\n') + tr("%n request(s) today", nullptr, int(qMin<quint64>(m_requests, INT_MAX)));
    m_tray->setToolTip(text);
}

} // namespace keyrelay
