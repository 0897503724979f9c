#include "mainwindow.h"

#include "icons.h"
#include "keypool.h"
#include "keyspage.h"
#include "keytablemodel.h"
#include "keytester.h"
#include "logmodel.h"
#include "logpage.h"
#include "proxycredentials.h"
#include "proxyservice.h"
#include "settingspage.h"
#include "settingsregistry.h"
#include "usagepage.h"

#include <QApplication>
#include <QClipboard>
#include <QCloseEvent>
#include <QFrame>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QMessageBox>
#include <QPushButton>
#include <QTabWidget>
#include <QVBoxLayout>

namespace keyrelay {

MainWindow::MainWindow(SettingsRegistry *settings, KeyPool *pool, KeyStore *store, ProxyService *service,
                       AutostartManager *autostart, UsageStore *usage, QWidget *parent)
    : QMainWindow(parent), m_settings(settings), m_pool(pool), m_service(service),
      m_tester(new KeyTester(this)), m_logModel(new LogModel(this)), m_tabs(new QTabWidget(this)),
      m_today(QDate::currentDate())
{
    setWindowTitle(tr("KeyRelay"));
    setWindowIcon(icons::appIcon());
    m_tester->setConfig(runtimeConfig());

    m_keysPage = new KeysPage(pool, store, m_tester, m_tabs);
    m_logPage = new LogPage(m_logModel, m_tabs);
    m_settingsPage = new SettingsPage(settings, service, autostart, m_tabs);
    m_tabs->addTab(m_keysPage, tr("&Keys"));
    m_tabs->addTab(m_logPage, tr("&Log"));
    m_tabs->addTab(m_settingsPage, tr("&Settings"));
    // Opening the log focuses its table (see LogPage), whatever had the focus on the page before.
    connect(m_tabs, &QTabWidget::currentChanged, this, [this](int index) {
        if (m_tabs->widget(index) == m_logPage && m_logPage->isVisible())
            m_logPage->setFocus(Qt::TabFocusReason);
    });
    if (usage) {
        m_keysPage->model()->setUsageStore(usage);
        m_usagePage = new UsagePage(usage, m_tabs);
        m_tabs->addTab(m_usagePage, tr("&Usage"));
    }

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
    m_messageLabel = new QLabel(status);
    m_messageLabel->setWordWrap(true);
    m_messageLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_messageLabel->hide();
    connect(m_copyButton, &QPushButton::clicked, this, &MainWindow::copyEndpoint);
    connect(m_startStopButton, &QPushButton::clicked, this, [this] {
        if (m_service->state() == ProxyService::State::Running)
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
    statusLayout->addWidget(m_messageLabel);

    auto *central = new QWidget(this);
    auto *layout = new QVBoxLayout(central);
    layout->addWidget(status);
    layout->addWidget(m_tabs, 1);
    setCentralWidget(central);
    resize(1100, 700);

    connect(m_service, &ProxyService::stateChanged, this, &MainWindow::updateState);
    connect(m_service, &ProxyService::started, this, [this] {
        updateState();
        if (m_messageLabel->property("isError").toBool())
            showMessage(QString(), false);
    });
    connect(m_service, &ProxyService::failed, this, [this](const QString &error) {
        updateState();
        showMessage(tr("The proxy could not start: %1").arg(error), true);
        Q_EMIT proxyFailed(error);
    });
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
        if (!m_settingsPage->allowWebsite(origin, &error))
            QMessageBox::warning(this, tr("KeyRelay"), tr("Could not allow %1: %2").arg(origin, error));
    });
    connect(m_settingsPage, &SettingsPage::applied, this, [this] {
        m_tester->setConfig(runtimeConfig());
        updateState();
    });
    connect(m_settingsPage, &SettingsPage::applyFailed, this, [this](const QString &) {
        m_tester->setConfig(runtimeConfig());
        updateState();
    });
    connect(m_keysPage, &KeysPage::saveFailed, this, [this](const QString &error) {
        showMessage(tr("The keys could not be saved: %1").arg(error), true);
    });
    m_countTimer.setSingleShot(true);
    m_countTimer.setInterval(300);
    connect(&m_countTimer, &QTimer::timeout, this, [this] {
        m_requestsLabel->setText(tr("Requests today: %1").arg(QLocale().toString(m_requestsToday)));
        Q_EMIT requestCountChanged(m_requestsToday);
    });
    updateState();
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
    m_tester->setConfig(runtimeConfig());
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
    m_tabs->setCurrentIndex(int(page));
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
    m_service->stop();
    showMessage(tr("The proxy is stopped; clients get \"connection refused\"."), false);
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

QString MainWindow::endpointText() const
{
    return m_endpointLabel->text();
}

void MainWindow::updateState()
{
    const ProxyService::State state = m_service->state();
    switch (state) {
    case ProxyService::State::Running:
        m_stateLabel->setText(tr("● Running"));
        m_stateLabel->setStyleSheet(QStringLiteral("color: #208030; font-weight: bold;"));
        m_endpointLabel->setText(m_service->clientBaseUrl());
        m_startStopButton->setText(tr("S&top"));
        break;
    case ProxyService::State::Stopped:
        m_stateLabel->setText(tr("● Stopped"));
        m_stateLabel->setStyleSheet(QStringLiteral("color: #707070; font-weight: bold;"));
        m_endpointLabel->setText(m_service->config().clientBaseUrl());
        m_startStopButton->setText(tr("S&tart"));
        break;
    case ProxyService::State::Failed:
        m_stateLabel->setText(tr("● Not running"));
        m_stateLabel->setStyleSheet(QStringLiteral("color: #c02020; font-weight: bold;"));
        m_endpointLabel->setText(m_service->config().clientBaseUrl());
        m_startStopButton->setText(tr("S&tart"));
        break;
    }
    m_copyButton->setEnabled(state == ProxyService::State::Running);
    m_requestsLabel->setText(tr("Requests today: %1").arg(QLocale().toString(m_requestsToday)));
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
    const QDate today = QDate::currentDate();
    if (today != m_today) {
        m_today = today;
        m_requestsToday = 0;
    }
    ++m_requestsToday;
    // Thousands of requests per second must not mean thousands of label updates.
    if (!m_countTimer.isActive())
        m_countTimer.start();
}

void MainWindow::closeEvent(QCloseEvent *event)
{
    if (m_hideOnClose) {
        hide();
        event->ignore();
        return;
    }
    QMainWindow::closeEvent(event);
}

} // namespace keyrelay
