#include "mainwindow.h"

#include "icons.h"
#include "keypool.h"
#include "keyspage.h"
#include "keytablemodel.h"
#include "keytester.h"
#include "logmodel.h"
#include "logpage.h"
#include "providerspage.h"
#include "proxycredentials.h"
#include "proxyservice.h"
#include "servicestatus.h"
#include "settingspage.h"
#include "settingsregistry.h"
#include "usagepage.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QCloseEvent>
#include <QFrame>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMessageBox>
#include <QPushButton>
#include <QTabWidget>
#include <QTableView>
#include <QVBoxLayout>

namespace keyrelay {

MainWindow::MainWindow(SettingsRegistry *settings, KeyPool *pool, KeyStore *store, ProxyService *service,
                       AutostartManager *autostart, UsageStore *usage, QWidget *parent)
    : QMainWindow(parent), m_settings(settings), m_pool(pool), m_service(service),
      m_tester(new KeyTester(this)), m_logModel(new LogModel(this)), m_tabs(new QTabWidget(this)),
      m_status(new ServiceStatus(service, pool, usage, this))
{
    setWindowTitle(tr("KeyRelay"));
    setWindowIcon(icons::appIcon());
    m_keysPage = new KeysPage(pool, store, m_tester, m_tabs);
    m_logPage = new LogPage(m_logModel, m_tabs);
    m_logPage->filterEdit()->setAccessibleName(tr("Filter the log"));
    m_settingsPage = new SettingsPage(settings, service, autostart, m_tabs);
    m_tabs->addTab(m_keysPage, tr("&Keys"));
    m_tabs->addTab(m_logPage, tr("&Log"));
    m_tabs->addTab(m_settingsPage, tr("&Settings"));
    connect(m_tabs, &QTabWidget::currentChanged, this, &MainWindow::onTabChanged);
    if (usage) {
        m_keysPage->model()->setUsageStore(usage);
        m_usagePage = new UsagePage(usage, m_tabs);
        m_tabs->addTab(m_usagePage, tr("&Usage"));
    }
    m_providersPage = new ProvidersPage(settings, service, nullptr, m_tabs);
    m_tabs->addTab(m_providersPage, tr("&Providers"));
    updateTesterConfig();
    updateProviderColumn();

    // Status line.
    auto *status = new QFrame(this);
    status->setFrameShape(QFrame::StyledPanel);
    m_stateLabel = new QLabel(status);
    m_endpointLabel = new QLabel(status);
    m_endpointLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    QFont mono = m_endpointLabel->font();
    mono.setFamily(QStringLiteral("monospace"));
    mono.setStyleHint(QFont::Monospace);
    m_endpointLabel->setFont(mono);
    m_copyButton = new QPushButton(tr("&Copy URL"), status);
    m_copyButton->setToolTip(tr("Copy the endpoint URL; use it as the API base URL in your client"));
    m_startStopButton = new QPushButton(status);
    m_requestsLabel = new QLabel(status);
    m_requestsLabel->setToolTip(
        tr("Requests sent upstream with one of your keys today, as on the Usage page"));
    m_detailLabel = new QLabel(status);
    m_detailLabel->setWordWrap(true);
    m_detailLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_messageLabel = new QLabel(status);
    m_messageLabel->setWordWrap(true);
    m_messageLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_messageLabel->hide();
    connect(m_copyButton, &QPushButton::clicked, this, &MainWindow::copyEndpoint);
    connect(m_startStopButton, &QPushButton::clicked, this, [this] {
        if (m_status->state() == ServiceStatus::State::Running
            || m_status->state() == ServiceStatus::State::Degraded)
            stopProxy();
        else
            startProxy();
    });
    auto *row = new QHBoxLayout;
    row->addWidget(m_stateLabel);
    row->addSpacing(8);
    row->addWidget(m_endpointLabel);
    row->addWidget(m_copyButton);
    row->addStretch(1);
    row->addWidget(m_requestsLabel);
    row->addSpacing(8);
    row->addWidget(m_startStopButton);
    auto *statusLayout = new QVBoxLayout(status);
    statusLayout->setContentsMargins(8, 6, 8, 6);
    statusLayout->addLayout(row);
    statusLayout->addWidget(m_detailLabel);
    statusLayout->addWidget(m_messageLabel);

    auto *central = new QWidget(this);
    auto *layout = new QVBoxLayout(central);
    layout->addWidget(status);
    layout->addWidget(m_tabs, 1);
    setCentralWidget(central);
    resize(1100, 700);

    // Everything the status line says comes from the one ServiceStatus, as the tray's icon and menu do.
    connect(m_status, &ServiceStatus::changed, this, &MainWindow::updateState);
    connect(m_status, &ServiceStatus::requestsTodayChanged, this, &MainWindow::updateState);
    connect(m_service, &ProxyService::failed, this, &MainWindow::proxyFailed);
    connect(m_service, &ProxyService::requestFinished, this, &MainWindow::onRequestFinished);
    connect(m_service, &ProxyService::requestFinished, m_logModel, &LogModel::append);
    // Key state changes are rows of the log too (method "KEY"), with their reason.
    connect(m_pool, &KeyPool::keyFailed, this, [this](int, const QString &label, const QString &reason) {
        addKeyEvent(label, tr("stopped working"), reason);
    });
    connect(m_pool, &KeyPool::keyRecovered, this,
            [this](int, const QString &label) { addKeyEvent(label, tr("works again"), QString()); });
    connect(m_logPage, &LogPage::allowWebsiteRequested, this, [this](const QString &origin) {
        QString error;
        if (m_settingsPage->allowWebsite(origin, &error))
            m_logPage->websiteAllowed(origin); // the confirmation where the user clicked
        else
            QMessageBox::warning(this, tr("KeyRelay"), tr("Could not allow %1: %2").arg(origin, error));
    });
    connect(m_settingsPage, &SettingsPage::applied, this, [this] {
        updateTesterConfig();
        m_status->clearRecentRequests(); // perhaps another upstream now
    });
    connect(m_settingsPage, &SettingsPage::applyFailed, this, [this](const QString &) {
        updateTesterConfig();
        m_status->refresh();
    });
    connect(m_providersPage, &ProvidersPage::applied, this, [this] {
        m_keysPage->refreshProviders(); // and, through providerSelected, the tester
        updateTesterConfig();
        updateProviderColumn();
        m_status->clearRecentRequests();
    });
    connect(m_providersPage, &ProvidersPage::applyFailed, this,
            [this](const QString &) { m_status->refresh(); });
    connect(m_keysPage, &KeysPage::providerSelected, this, &MainWindow::updateTesterConfig);
    connect(m_keysPage, &KeysPage::saveFailed, this, [this](const QString &error) {
        showMessage(tr("The keys could not be saved: %1").arg(error), true);
    });
    createShortcuts();
    updateState();
}

void MainWindow::createShortcuts()
{
    // Window-wide: Ctrl+W closes (hides to the tray where there is one), Ctrl+Q quits.
    // The platform's bindings (where its theme has them) and the usual ones everywhere.
    const auto withDefault = [](QKeySequence::StandardKey key, const QKeySequence &usual) {
        QList<QKeySequence> keys = QKeySequence::keyBindings(key);
        if (!keys.contains(usual))
            keys.prepend(usual);
        return keys;
    };
    auto *close = new QAction(tr("Close window"), this);
    close->setShortcuts(withDefault(QKeySequence::Close, QKeySequence(Qt::CTRL | Qt::Key_W)));
    connect(close, &QAction::triggered, this, &QWidget::close);
    addAction(close);
    auto *quit = new QAction(tr("Quit KeyRelay"), this);
    quit->setShortcuts(withDefault(QKeySequence::Quit, QKeySequence(Qt::CTRL | Qt::Key_Q)));
    connect(quit, &QAction::triggered, this, &MainWindow::requestQuit);
    addAction(quit);
}

void MainWindow::requestQuit()
{
    if (!confirmPendingPages())
        return;
    Q_EMIT quitRequested();
}

bool MainWindow::confirmPendingPages()
{
    return m_settingsPage->confirmDiscardOrApply(this) && m_providersPage->confirmDiscardOrApply(this);
}

void MainWindow::onTabChanged(int index)
{
    const int previous = m_currentTab;
    m_currentTab = index;
    if (m_switchingBack)
        return;
    const bool stay = (m_tabs->widget(previous) == m_settingsPage && m_tabs->widget(index) != m_settingsPage
                       && m_settingsPage->hasPendingChanges() && !m_settingsPage->confirmDiscardOrApply(this))
        || (m_tabs->widget(previous) == m_providersPage && m_tabs->widget(index) != m_providersPage
            && m_providersPage->hasPendingChanges() && !m_providersPage->confirmDiscardOrApply(this));
    if (stay) {
        // Stay on the page with its changes.
        m_switchingBack = true;
        m_tabs->setCurrentIndex(previous);
        m_switchingBack = false;
        return;
    }
    // Opening the log focuses its table (see LogPage), whatever had the focus on the page before.
    if (m_tabs->widget(index) == m_logPage && m_logPage->isVisible())
        m_logPage->setFocus(Qt::TabFocusReason);
}

MainWindow::~MainWindow()
{
    // The pages go first, while the log model and the key tester they use still exist.
    delete takeCentralWidget();
}

// --- Issue 15 (notices) ---
void MainWindow::addBanner(QWidget *banner)
{
    if (auto *layout = qobject_cast<QBoxLayout *>(centralWidget()->layout()))
        layout->insertWidget(1, banner); // under the status line, above the pages
}
// --- end issue 15 ---

void MainWindow::setProxyCredentials(ProxyCredentials *credentials)
{
    m_credentials = credentials;
    m_settingsPage->setProxyCredentials(credentials);
    m_providersPage->setProxyCredentials(credentials);
    updateTesterConfig();
}

void MainWindow::setProviderKeys(ProviderKeys *keys)
{
    m_providersPage->setProviderKeys(keys);
    m_keysPage->setProviderKeys(keys);
    updateTesterConfig();
}

void MainWindow::updateTesterConfig()
{
    ProxyConfig config = runtimeConfig();
    ProviderKind kind = ProviderKind::OpenAi;
    const QString id = m_keysPage->currentProvider();
    for (const ProviderConfig &provider : std::as_const(config.providers)) {
        if (provider.id != id)
            continue;
        config.upstream = provider.baseUrl;
        if (!provider.upstreamProxy.isEmpty())
            config.upstreamProxy = provider.upstreamProxy;
        kind = provider.kind;
    }
    m_tester->setConfig(config);
    m_tester->setProviderKind(kind);
}

void MainWindow::updateProviderColumn()
{
    m_logPage->view()->setColumnHidden(LogModel::ProviderColumn, m_settings->providers().isEmpty());
}

ProxyConfig MainWindow::runtimeConfig() const
{
    ProxyConfig config = m_settings->proxyConfig();
    if (m_credentials)
        m_credentials->complete(&config);
    return config;
}

void MainWindow::showPage(Page page)
{
    QWidget *const pages[] = { m_keysPage, m_logPage, m_settingsPage, m_usagePage, m_providersPage };
    if (pages[page])
        m_tabs->setCurrentWidget(pages[page]);
}

void MainWindow::bringToFront()
{
    if (isMinimized())
        setWindowState(windowState() & ~Qt::WindowMinimized);
    show();
    raise();
    activateWindow();
}

void MainWindow::copyEndpoint()
{
    QApplication::clipboard()->setText(m_service->clientBaseUrl());
    showMessage(tr("Copied %1 to the clipboard.").arg(m_service->clientBaseUrl()), false);
}

void MainWindow::startProxy()
{
    QString error;
    m_service->start(runtimeConfig(), &error); // failures arrive through failed()
}

void MainWindow::stopProxy()
{
    m_service->stop(); // the status line says what that means (see ServiceStatus)
}

void MainWindow::showMessage(const QString &text, bool error)
{
    m_messageLabel->setText(text);
    m_messageLabel->setProperty("isError", error);
    m_messageLabel->setStyleSheet(error ? QStringLiteral("color: #c02020;") : QString());
    m_messageLabel->setVisible(!text.isEmpty());
}

QString MainWindow::messageText() const
{
    return m_messageLabel->text();
}

QString MainWindow::stateText() const
{
    return m_stateLabel->text();
}

QString MainWindow::detailText() const
{
    return m_detailLabel->isVisibleTo(this) ? m_detailLabel->text() : QString();
}

QString MainWindow::endpointText() const
{
    return m_endpointLabel->text();
}

quint64 MainWindow::requestsToday() const
{
    return m_status->requestsToday();
}

QString MainWindow::requestsText() const
{
    return m_requestsLabel->text();
}

void MainWindow::updateState()
{
    const ServiceStatus::State state = m_status->state();
    const bool running = state == ServiceStatus::State::Running || state == ServiceStatus::State::Degraded;
    QString colour;
    switch (state) {
    case ServiceStatus::State::Running:
        colour = QStringLiteral("#208030");
        break;
    case ServiceStatus::State::Degraded:
        colour = QStringLiteral("#a05a00");
        break;
    case ServiceStatus::State::Stopped:
        colour = QStringLiteral("#707070");
        break;
    case ServiceStatus::State::Failed:
        colour = QStringLiteral("#c02020");
        break;
    }
    m_stateLabel->setText(m_status->stateText());
    m_stateLabel->setStyleSheet(QStringLiteral("color: %1; font-weight: bold;").arg(colour));
    m_endpointLabel->setText(m_status->endpoint());
    m_startStopButton->setText(running ? tr("S&top") : tr("S&tart"));
    m_copyButton->setEnabled(running);
    const QString detail = m_status->detailText();
    m_detailLabel->setText(detail);
    m_detailLabel->setStyleSheet(
        state == ServiceStatus::State::Stopped ? QString() : QStringLiteral("color: %1;").arg(colour));
    m_detailLabel->setVisible(!detail.isEmpty());
    m_requestsLabel->setText(tr("Requests today: %1").arg(QLocale().toString(m_status->requestsToday())));
}

void MainWindow::addKeyEvent(const QString &label, const QString &what, const QString &reason)
{
    RequestRecord event;
    event.id = 0;
    event.startedAt = QDateTime::currentDateTime();
    event.method = QStringLiteral("KEY");
    event.path = what;
    event.keyLabel = label;
    event.status = reason.isEmpty() ? 200 : 0;
    event.error = reason;
    m_logModel->append(event);
}

void MainWindow::onRequestFinished(const RequestRecord &)
{
    m_keysPage->model()->scheduleRefresh(); // tokens today
}

void MainWindow::closeEvent(QCloseEvent *event)
{
    if (isVisible() && !confirmPendingPages()) {
        event->ignore();
        return;
    }
    if (m_hideOnClose) {
        hide();
        event->ignore();
        return;
    }
    QMainWindow::closeEvent(event);
}

} // namespace keyrelay
