export { queueBoard, QUEUE_BOARD_PATH } from './queue-board.js';
